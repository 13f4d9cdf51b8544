// Browser test of the whole product: starts the real backend (embedded PostgreSQL, offline models, the
// tests' tiny Llama as the review writer) on a free port with a fresh data directory, drives the built
// UI in headless Chromium, saves screenshots of every screen (to $SCREENSHOT_DIR, else
// frontend/test-results/screenshots), and stops the backend. Run with `npm run e2e` (it builds first).
// The pass runs with API keys: once the server is up, `rag keys create` makes an admin key, which the
// checks enter in the web UI's key dialog when the server first asks for one.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { checks } from "./checks.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const frontend = path.resolve(here, "..");
const root = path.resolve(frontend, "..");
const rag = path.join(root, ".venv", "bin", "rag");
const python = path.join(root, ".venv", "bin", "python");
// `make screenshots` refreshes the README's pictures; ordinary test runs keep theirs out of git.
const shots = process.env.SCREENSHOT_DIR
  ? path.resolve(process.env.SCREENSHOT_DIR)
  : path.join(frontend, "test-results", "screenshots");
const failures = path.join(frontend, "test-results");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const READY_TIMEOUT_MS = 300_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The tests' tiny Llama (a tokenizer and two layers, pre-trained briefly on NSMC reviews), in `dir`. */
function buildTinyModel(dir) {
  const script = [
    "import sys",
    "from pathlib import Path",
    "from tests.utils.tiny_lm import build_tiny_model_dir",
    "build_tiny_model_dir(Path(sys.argv[1]), pretrain_steps=50)",
  ].join("\n");
  return new Promise((resolve, reject) => {
    execFile(python, ["-c", script, dir], { cwd: path.join(root, "backend"), timeout: 600_000 }, (error, _, stderr) => {
      if (error) reject(new Error(`building the tiny model failed: ${stderr || error.message}`));
      else resolve(dir);
    });
  });
}

function backendEnv(port, scratch) {
  const env = {
    ...process.env,
    RAG_DATA_DIR: path.join(scratch, "data"),
    API_PORT: String(port),
    API_INDEX_SAMPLE_CORPUS: "false",
    // The fake model answers chat from the retrieved passages (citing [1]); the tiny local model
    // writes reviews, so that the adapter a fine-tuning job trains on it can be published to it.
    LLM_PROVIDER: "fake",
    REVIEW_PROVIDER: "local",
    REVIEW_MODEL: path.join(scratch, "tiny-model"),
    EMBEDDING_PROVIDER: "hash",
  };
  // Always the embedded database: the test must not touch a server named in the caller's environment,
  // nor settings from a developer's .env (read from the working directory, hence the empty one).
  delete env.DATABASE_URL;
  return env;
}

function startBackend(port, scratch) {
  const log = [];
  const env = backendEnv(port, scratch);
  const child = spawn(rag, ["serve", "--port", String(port)], {
    cwd: scratch,
    detached: true,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return { child, log, exited };
}

async function waitReady(base, backend) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exitCode = null;
  void backend.exited.then((code) => (exitCode = code ?? "signal"));
  while (Date.now() < deadline) {
    if (exitCode !== null) throw new Error(`the backend exited (${exitCode}) before it was ready`);
    try {
      const response = await fetch(`${base}/ready`);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the backend was not ready within ${READY_TIMEOUT_MS / 1000} s`);
}

/** An admin key made by the CLI while the server runs, as an administrator would. */
function createKey(port, scratch) {
  return new Promise((resolve, reject) => {
    execFile(
      rag,
      ["keys", "create", "--role", "admin", "--name", "e2e", "--json"],
      { cwd: scratch, env: backendEnv(port, scratch), timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`rag keys create failed: ${stderr || error.message}`));
        else resolve(JSON.parse(stdout).key);
      },
    );
  });
}

async function stopBackend(backend) {
  const { child, exited } = backend;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const within = (ms) =>
    Promise.race([exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), ms))]);
  // Ctrl-C, as a person stops `make run`: the server shuts down and stops its embedded PostgreSQL.
  child.kill("SIGINT");
  if (await within(20_000)) return;
  process.kill(-child.pid, "SIGKILL");
  await exited;
}

async function main() {
  if (!existsSync(rag)) throw new Error(`${rag} is missing: run \`make install\` first`);
  if (!existsSync(path.join(frontend, "dist", "index.html")))
    throw new Error("frontend/dist is missing: run `npm run build`");
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: apt-get install chromium fonts-noto-cjk (or set CHROMIUM_PATH)`);
  }
  await mkdir(shots, { recursive: true });
  const scratch = await mkdtemp(path.join(os.tmpdir(), "rag-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const tinyModel = await buildTinyModel(path.join(scratch, "tiny-model")).catch(async (error) => {
    await rm(scratch, { recursive: true, force: true });
    throw error;
  });
  const backend = startBackend(port, scratch);
  let browser;
  let failed = false;
  try {
    await waitReady(base, backend);
    const key = await createKey(port, scratch);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    await checks({
      browser,
      base,
      key,
      shots,
      failures,
      fixtures: path.join(here, "fixtures"),
      reviewModel: tinyModel,
      nsmc: path.resolve(root, "..", "shared", "data", "nsmc"),
    });
  } catch (error) {
    failed = true;
    console.error(`\nE2E FAILED: ${error instanceof Error ? error.stack : error}`);
    console.error(`\n--- backend log (last lines) ---\n${backend.log.join("").split("\n").slice(-40).join("\n")}`);
  } finally {
    await browser?.close();
    await stopBackend(backend);
    await rm(scratch, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
