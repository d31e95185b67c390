#!/usr/bin/env node
/**
 * argos-memory-publish: validate a JSONL file of memory events and publish the valid ones.
 *
 *   node dist/cli.js --brokers 127.0.0.1:9092 [--topic T] [--schema PATH] [--strict] --file events.jsonl
 *
 * Prints one JSON line to stdout: {"published": N, "invalid": M, "reasons": ["line 3: ...", ...]}
 * (kafkajs logs, if any, go to stderr). Exit status: 0; 2 when --strict and any line was invalid;
 * 1 on a usage error or when Kafka refused or could not be reached (message on stderr).
 */

import { createReadStream } from "node:fs";
import * as readline from "node:readline";
import { parseArgs } from "node:util";

import { DEFAULT_TOPIC, MemoryPublisher, type MemoryEvent } from "./publisher";

/** Events per `producer.send` batch. */
const BATCH_SIZE = 500;
/** Reasons listed in the summary at most (the `invalid` count is always exact). */
const MAX_LISTED_REASONS = 100;

const USAGE = `usage: argos-memory-publish --brokers HOST:PORT[,HOST:PORT...] --file EVENTS.jsonl
                            [--topic TOPIC] [--schema SCHEMA.json] [--client-id ID] [--strict]

  --brokers    Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)
  --file       one memory event (JSON object) per line; "-" reads stdin; blank lines are skipped
  --topic      default ${DEFAULT_TOPIC}
  --schema     memory event JSON Schema (default: the repository's schemas/json/memory_event.v1.json)
  --strict     exit 2 if any line was invalid (the valid lines are still published)
`;

class UsageError extends Error {}

interface Options {
  brokers: string[];
  file: string;
  topic: string;
  schema?: string;
  clientId?: string;
  strict: boolean;
}

function parseOptions(argv: string[]): Options | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        brokers: { type: "string" },
        file: { type: "string" },
        topic: { type: "string" },
        schema: { type: "string" },
        "client-id": { type: "string" },
        strict: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return "help";
  const brokers = (values.brokers ?? process.env.KAFKA_BOOTSTRAP_SERVERS ?? "")
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  if (brokers.length === 0) throw new UsageError("--brokers is required");
  if (!values.file) throw new UsageError("--file is required");
  return {
    brokers,
    file: values.file,
    topic: values.topic ?? DEFAULT_TOPIC,
    schema: values.schema,
    clientId: values["client-id"],
    strict: values.strict ?? false,
  };
}

async function run(opts: Options): Promise<number> {
  const publisher = new MemoryPublisher({
    brokers: opts.brokers,
    topic: opts.topic,
    schemaPath: opts.schema,
    clientId: opts.clientId,
  });
  const input = opts.file === "-" ? process.stdin : createReadStream(opts.file, "utf8");
  const lines = readline.createInterface({ input, crlfDelay: Infinity });

  let published = 0;
  let invalid = 0;
  const reasons: string[] = [];
  let pending: MemoryEvent[] = [];
  let connected = false;

  const flush = async () => {
    if (pending.length === 0) return;
    if (!connected) {
      await publisher.connect(); // only once there is something valid to send
      connected = true;
    }
    await publisher.publishMany(pending);
    published += pending.length;
    pending = [];
  };

  try {
    let lineNo = 0;
    for await (const line of lines) {
      lineNo += 1;
      if (line.trim() === "") continue;
      let event: unknown;
      let reason: string | null = null;
      try {
        event = JSON.parse(line);
      } catch (err) {
        reason = `not JSON: ${(err as Error).message}`;
      }
      if (reason === null) {
        const result = publisher.validate(event);
        if (!result.ok) reason = result.reason;
      }
      if (reason !== null) {
        invalid += 1;
        if (reasons.length < MAX_LISTED_REASONS) reasons.push(`line ${lineNo}: ${reason}`);
        continue;
      }
      pending.push(event as MemoryEvent);
      if (pending.length >= BATCH_SIZE) await flush();
    }
    await flush();
  } finally {
    if (connected) await publisher.disconnect();
  }

  if (invalid > reasons.length) reasons.push(`... (+${invalid - reasons.length} more)`);
  process.stdout.write(JSON.stringify({ published, invalid, reasons }) + "\n");
  return opts.strict && invalid > 0 ? 2 : 0;
}

async function main(): Promise<number> {
  let opts: Options | "help";
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n\n${USAGE}`);
      return 1;
    }
    throw err;
  }
  if (opts === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(opts);
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`error: ${e.name}: ${e.message}\n`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
