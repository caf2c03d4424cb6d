import assert from "node:assert/strict";
import { LockWindow } from "../../lib/worker/lock_window.ts";

/**
 * Advisory locks as the queue session keeps them: `othersHold` are held by other sessions;
 * every tryLock and unlock call is recorded.
 */
function fakeLocks(othersHold: number[] = []) {
  const taken = new Set(othersHold);
  const calls = { tryLock: [] as number[][], unlock: [] as number[][] };
  return {
    calls,
    tryLock(ids: number[]): Promise<number[]> {
      calls.tryLock.push(ids);
      return Promise.resolve(ids.filter((id) => !taken.has(id)));
    },
    unlock(ids: number[]): Promise<void> {
      calls.unlock.push(ids);
      return Promise.resolve();
    },
  };
}

const notRunning = () => false;

Deno.test("LockWindow.open: locks the window's ids from the next one, except those held elsewhere", async () => {
  const locks = fakeLocks([12]);
  const window = new LockWindow(locks, 4, notRunning);
  await window.open(10);
  assert.deepEqual(locks.calls.tryLock, [[10, 11, 12, 13]]);
  assert.deepEqual(window.held, [10, 11, 13]);
});

Deno.test("LockWindow.advance: locks only the ids the window newly covers; never moves down", async () => {
  const locks = fakeLocks();
  const window = new LockWindow(locks, 4, notRunning);
  await window.open(10);
  await window.advance(12);
  assert.deepEqual(locks.calls.tryLock.at(-1), [14, 15]);
  await window.advance(11);
  assert.equal(locks.calls.tryLock.length, 2);
  // Far ahead: only the window's size, not every id in between.
  await window.advance(100);
  assert.deepEqual(locks.calls.tryLock.at(-1), [100, 101, 102, 103]);
});

Deno.test("LockWindow: a lock held by the window and by the claim is unlocked twice", async () => {
  const locks = fakeLocks();
  const window = new LockWindow(locks, 2, notRunning);
  await window.open(1);
  window.hold(1); // the claim took it again
  window.hold(5); // a request claimed outside the window
  assert.equal(window.holds(1), 2);
  assert.equal(window.holds(2), 1);
  await window.release([1, 2, 5, 7]);
  assert.deepEqual(locks.calls.unlock, [[1, 1, 2, 5]]);
  assert.deepEqual(window.held, []);
});

Deno.test("LockWindow.takeOver: locks the window from `next` that this worker lacks, and keeps its end", async () => {
  const locks = fakeLocks([21]);
  const window = new LockWindow(locks, 3, notRunning);
  await window.open(20);
  await window.takeOver(20);
  assert.deepEqual(locks.calls.tryLock.at(-1), [21]);
  // The end moved with it: advancing within it locks nothing new.
  await window.takeOver(30);
  await window.advance(30);
  assert.deepEqual(locks.calls.tryLock.at(-1), [30, 31, 32]);
  assert.equal(locks.calls.tryLock.length, 3);
});

Deno.test("LockWindow.releaseFinished: only held ids of requests this worker does not run, that the queue says are finished", async () => {
  const locks = fakeLocks();
  const running = new Set([3]);
  const window = new LockWindow(locks, 5, (id) => running.has(id));
  await window.open(1);
  const asked: number[][] = [];
  // The queue says 4 is still queued: a forged announcement releases nothing of it.
  const settled = (ids: number[]) => {
    asked.push(ids);
    return Promise.resolve(ids.filter((id) => id !== 4));
  };
  await window.releaseFinished([2, 3, 4, 9], settled);
  assert.deepEqual(asked, [[2, 4]]);
  assert.deepEqual(locks.calls.unlock, [[2]]);
  assert.deepEqual(window.held, [1, 3, 4, 5]);
  // Nothing held to release: no statement at all.
  await window.releaseFinished([2, 9], settled);
  assert.equal(asked.length, 1);
  assert.equal(locks.calls.unlock.length, 1);
});

Deno.test("LockWindow.clear: forgets every hold (the session's locks are gone)", async () => {
  const locks = fakeLocks();
  const window = new LockWindow(locks, 2, notRunning);
  await window.open(1);
  window.clear();
  assert.deepEqual(window.held, []);
  await window.release([1, 2]);
  assert.deepEqual(locks.calls.unlock, [[]]);
});
