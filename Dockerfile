# The omni_kube worker. Build: docker build -t omni-kube-worker .
FROM denoland/deno:2.9.6
WORKDIR /app
COPY deno.json deno.lock ./
COPY mod.ts ./
COPY lib lib
COPY sql sql
# Fetch and compile the dependencies into the image, so the worker starts without the network.
RUN deno cache mod.ts
USER deno
EXPOSE 8080
CMD ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-run", "--allow-sys=hostname", "mod.ts", "start"]
