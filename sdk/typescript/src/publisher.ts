/**
 * MemoryPublisher: publish ArgOS memory events to Kafka from TypeScript agents.
 *
 * Every event is validated against the project's contract, `schemas/json/memory_event.v1.json`
 * (JSON Schema 2020-12, exported from the Python pydantic model), before it is sent, so a bug in
 * an agent shows up at its call site and not only in the pipeline's dead-letter topic.
 *
 * Messages are keyed by `agent_id` and partitioned with kafkajs's DefaultPartitioner (murmur2,
 * Java-compatible), the same partitioner the Python SDK (kafka-python) and the Java client use, so
 * one agent's memories land on the same partition, in order, whichever language published them.
 */

import { readFileSync } from "node:fs";
import * as path from "node:path";

import Ajv2020 from "ajv/dist/2020";
import type { ErrorObject, ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import {
  Kafka,
  Partitioners,
  logLevel as LogLevel,
  type KafkaConfig,
  type LogEntry,
  type Producer,
  type RecordMetadata,
} from "kafkajs";

export const DEFAULT_TOPIC = "argos.memory.events";
/** Same limit as the Python contract (`schemas.memory_event.MAX_EVENT_BYTES`). */
export const MAX_EVENT_BYTES = 64 * 1024;
/** Environment variable that overrides the default schema location. */
export const SCHEMA_PATH_ENV = "ARGOS_MEMORY_EVENT_SCHEMA";

/** The contract, as a TypeScript type (the JSON Schema file stays the source of truth). */
export interface MemoryEvent {
  schema_version: 1;
  memory_id: string;
  agent_id: string;
  namespace: string;
  type: "episodic" | "semantic" | "procedural";
  content: string;
  steps?: string[] | null;
  importance?: number;
  emotion?: { valence?: number; arousal?: number };
  position?: { x: number; y: number; z?: number | null } | null;
  tags?: string[];
  /** RFC 3339 with a timezone offset, e.g. "2026-01-01T00:00:00Z". */
  event_time: string;
  embedding?: number[] | null;
}

export type ValidationResult = { ok: true } | { ok: false; reason: string };

/** Thrown by `publish`/`publishMany` when an event breaks the contract; nothing was sent. */
export class InvalidMemoryEvent extends Error {
  readonly reason: string;

  constructor(reason: string) {
    super(`invalid memory event: ${reason}`);
    this.name = "InvalidMemoryEvent";
    this.reason = reason;
  }
}

/**
 * The schema shipped with the repository: `<repo>/schemas/json/memory_event.v1.json`, found
 * relative to this package (`sdk/typescript/`), unless `$ARGOS_MEMORY_EVENT_SCHEMA` names another.
 */
export function defaultSchemaPath(): string {
  const fromEnv = process.env[SCHEMA_PATH_ENV];
  if (fromEnv) return path.resolve(fromEnv);
  // __dirname is sdk/typescript/dist (or src under ts-node): the package root is one up.
  const packageRoot = path.resolve(__dirname, "..");
  return path.resolve(packageRoot, "..", "..", "schemas", "json", "memory_event.v1.json");
}

const MAX_REASONS = 5;

/** Validates events against the JSON Schema file plus the rules the schema cannot express. */
export class MemoryEventValidator {
  readonly schemaPath: string;
  readonly supportedVersions: readonly number[];
  private readonly check: ValidateFunction;

  constructor(schemaPath: string = defaultSchemaPath()) {
    this.schemaPath = path.resolve(schemaPath);
    let schema: Record<string, unknown>;
    try {
      schema = JSON.parse(readFileSync(this.schemaPath, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new Error(
        `cannot load the memory event schema from ${this.schemaPath}: ${(err as Error).message} ` +
          `(pass schemaPath or set ${SCHEMA_PATH_ENV})`,
      );
    }
    // allErrors: report every broken field; strict stays on for the keywords but pydantic's
    // union types (anyOf [T, null]) are fine, so strictTypes is not needed.
    const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
    addFormats(ajv); // "date-time" (timezone offset required, as in pydantic's AwareDatetime)
    this.check = ajv.compile(schema);
    this.supportedVersions = supportedVersionsOf(schema);
  }

  validate(event: unknown): ValidationResult {
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      const kind = event === null ? "null" : Array.isArray(event) ? "array" : typeof event;
      return { ok: false, reason: `event must be a JSON object, got ${kind}` };
    }
    const data = event as Record<string, unknown>;
    // Checked first and on its own, as the Python ingest stage does, so a future-version event
    // gets one clear reason instead of a list of unknown-field errors.
    const version = data.schema_version;
    if (version === undefined || version === null) {
      return { ok: false, reason: "schema_version is missing" };
    }
    if (typeof version !== "number" || !this.supportedVersions.includes(version)) {
      return {
        ok: false,
        reason:
          `unsupported schema_version ${JSON.stringify(version)}; ` +
          `supported: ${JSON.stringify(this.supportedVersions)}`,
      };
    }
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(data), "utf8");
    } catch (err) {
      return { ok: false, reason: `event is not serialisable as JSON: ${(err as Error).message}` };
    }
    if (size > MAX_EVENT_BYTES) {
      return { ok: false, reason: `event is ${size} bytes; the limit is ${MAX_EVENT_BYTES}` };
    }
    if (!this.check(data)) {
      return { ok: false, reason: formatErrors(this.check.errors ?? []) };
    }
    // Rules of the pydantic model that are not in the exported JSON Schema.
    if (data.steps !== undefined && data.steps !== null && data.type !== "procedural") {
      return { ok: false, reason: "steps: steps are allowed only on procedural memories" };
    }
    const tags = (data.tags ?? []) as string[];
    const blank = tags.findIndex((t) => t.trim().length === 0);
    if (blank >= 0) {
      return { ok: false, reason: `tags.${blank}: must not be blank` };
    }
    return { ok: true };
  }
}

function supportedVersionsOf(schema: Record<string, unknown>): number[] {
  const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
  const sv = props?.schema_version;
  if (sv && typeof sv.const === "number") return [sv.const];
  if (sv && Array.isArray(sv.enum)) return sv.enum.filter((v): v is number => typeof v === "number");
  return [1];
}

function pointerToPath(pointer: string): string {
  if (!pointer) return "";
  return pointer
    .slice(1)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .join(".");
}

function formatError(err: ErrorObject): string {
  let where = pointerToPath(err.instancePath);
  let message = err.message ?? err.keyword;
  const params = err.params as Record<string, unknown>;
  if (err.keyword === "additionalProperties") {
    where = where ? `${where}.${String(params.additionalProperty)}` : String(params.additionalProperty);
    message = "unknown field (additional properties are not allowed)";
  } else if (err.keyword === "required") {
    where = where ? `${where}.${String(params.missingProperty)}` : String(params.missingProperty);
    message = "field required";
  } else if (err.keyword === "format") {
    message = `${message} (RFC 3339 with a timezone offset, e.g. 2026-01-01T00:00:00Z)`;
  } else if (err.keyword === "enum" && Array.isArray(params.allowedValues)) {
    message = `must be one of ${JSON.stringify(params.allowedValues)}`;
  }
  return `${where || "event"}: ${message}`;
}

function formatErrors(errors: ErrorObject[]): string {
  // anyOf failures repeat themselves (one error per branch plus the anyOf one): keep the first
  // message per field, most specific first.
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const err of errors) {
    if (err.keyword === "anyOf") continue;
    const text = formatError(err);
    const field = text.slice(0, text.indexOf(": "));
    if (seen.has(field)) continue;
    seen.add(field);
    parts.push(text);
  }
  if (parts.length === 0 && errors.length > 0) parts.push(formatError(errors[0]));
  // Drop a field's error when a field inside it has a more specific one (e.g. the "must be null"
  // branch of position when position.x is what is wrong).
  const fields = parts.map((t) => t.slice(0, t.indexOf(": ")));
  const specific = parts.filter(
    (_, i) => !fields.some((f, j) => j !== i && fields[i] !== "event" && f.startsWith(`${fields[i]}.`)),
  );
  const shown = specific.slice(0, MAX_REASONS);
  const more = specific.length - shown.length;
  return shown.join("; ") + (more > 0 ? ` (+${more} more)` : "");
}

export interface MemoryPublisherOptions {
  /** Bootstrap brokers, e.g. ["127.0.0.1:9092"]. */
  brokers: string[];
  /** Topic to publish to; default "argos.memory.events". */
  topic?: string;
  /** The memory event JSON Schema; default: the repository's schemas/json/memory_event.v1.json. */
  schemaPath?: string;
  clientId?: string;
  /** kafkajs log level; default WARN. Logs go to stderr as JSON lines. */
  logLevel?: LogLevel;
  /** How long the broker may take to get acks from all in-sync replicas (ms); default 30000. */
  ackTimeoutMs?: number;
  /** Anything else for the kafkajs client (ssl, sasl, retry, connectionTimeout, ...). */
  kafka?: Omit<KafkaConfig, "brokers" | "clientId" | "logLevel" | "logCreator">;
}

function stderrLogCreator() {
  return ({ namespace, label, log }: LogEntry) => {
    const { message, ...rest } = log;
    const prefix = namespace ? `[${namespace}] ` : "";
    process.stderr.write(
      JSON.stringify({ level: label, logger: "kafkajs", message: `${prefix}${message}`, ...rest }) +
        "\n",
    );
  };
}

/**
 * Publishes memory events to Kafka, validated, keyed by `agent_id`, acks from all in-sync replicas.
 *
 * ```ts
 * const pub = new MemoryPublisher({ brokers: ["127.0.0.1:9092"] });
 * await pub.connect();
 * await pub.publish({ schema_version: 1, memory_id: "m-1", agent_id: "a-1", namespace: "world",
 *                     type: "episodic", content: "saw a fox", event_time: new Date().toISOString() });
 * await pub.disconnect();
 * ```
 */
export class MemoryPublisher {
  readonly topic: string;
  readonly validator: MemoryEventValidator;
  private readonly producer: Producer;
  private readonly ackTimeoutMs: number;
  private connected = false;
  private connecting: Promise<void> | null = null;
  /** Events acknowledged by the broker since construction. */
  published = 0;

  constructor(options: MemoryPublisherOptions) {
    if (!options || !Array.isArray(options.brokers) || options.brokers.length === 0) {
      throw new Error('MemoryPublisher needs brokers, e.g. { brokers: ["127.0.0.1:9092"] }');
    }
    this.topic = options.topic ?? DEFAULT_TOPIC;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 30000;
    // Load and compile the schema now: a missing or broken contract fails at construction.
    this.validator = new MemoryEventValidator(options.schemaPath);
    const kafka = new Kafka({
      ...options.kafka,
      brokers: options.brokers,
      clientId: options.clientId ?? "argos-memory-publisher-ts",
      logLevel: options.logLevel ?? LogLevel.WARN,
      logCreator: stderrLogCreator,
    });
    // Explicit partitioner: Java-compatible murmur2 (same partition as kafka-python and Java for
    // the same key); passing it also silences kafkajs's "switched default partitioner" warning.
    this.producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    if (!this.connecting) {
      this.connecting = this.producer.connect().then(
        () => {
          this.connected = true;
          this.connecting = null;
        },
        (err: unknown) => {
          this.connecting = null;
          throw err;
        },
      );
    }
    return this.connecting;
  }

  /** Check one event against the contract without sending it. */
  validate(event: unknown): ValidationResult {
    return this.validator.validate(event);
  }

  /** Validate and send one event; resolves once all in-sync replicas have it. */
  async publish(event: MemoryEvent | Record<string, unknown>): Promise<RecordMetadata[]> {
    const result = this.validate(event);
    if (!result.ok) throw new InvalidMemoryEvent(result.reason);
    return this.send([event as MemoryEvent]);
  }

  /**
   * Validate all events, then send them in one `producer.send` batch. If any event is invalid
   * nothing is sent and `InvalidMemoryEvent` names every bad index.
   */
  async publishMany(
    events: ReadonlyArray<MemoryEvent | Record<string, unknown>>,
  ): Promise<RecordMetadata[]> {
    const bad: string[] = [];
    events.forEach((event, i) => {
      const result = this.validate(event);
      if (!result.ok) bad.push(`events[${i}]: ${result.reason}`);
    });
    if (bad.length > 0) throw new InvalidMemoryEvent(bad.join(" | "));
    if (events.length === 0) return [];
    return this.send(events as MemoryEvent[]);
  }

  async disconnect(): Promise<void> {
    if (this.connecting) await this.connecting.catch(() => undefined);
    await this.producer.disconnect();
    this.connected = false;
  }

  private async send(events: MemoryEvent[]): Promise<RecordMetadata[]> {
    await this.connect();
    const metadata = await this.producer.send({
      topic: this.topic,
      acks: -1,
      timeout: this.ackTimeoutMs,
      messages: events.map((event) => ({ key: event.agent_id, value: JSON.stringify(event) })),
    });
    this.published += events.length;
    return metadata;
  }
}
