import { connect } from "./lib/db.ts";
import { startPostgres } from "./testbed/postgres.ts";
const dir = await Deno.makeTempDir();
const server = await startPostgres(dir);
const a = connect(server.url, {
  max: 1,
  applicationName: "x",
  keepConnections: true,
  settings: { jit: "off" },
});
let pending = 0, ok = 0, err = 0;
let stop = false;
const loops = Array.from({ length: 3 }, async (_, k) => {
  while (!stop) {
    pending++;
    try {
      await a`select pg_sleep(0.003), ${k}::int as k`;
      ok++;
    } catch {
      err++;
    }
    pending--;
  }
});
for (let round = 0; round < 10; round++) {
  await new Promise((r) => setTimeout(r, 700));
  await server.crash();
  const okBefore = ok;
  await new Promise((r) => setTimeout(r, 1500));
  console.log(round, { pending, ok, err, progressed: ok - okBefore });
}
stop = true;
await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 3000))]);
console.log("end", { pending });
await a.end({ timeout: 1 });
await server.stop();
Deno.exit(0);
