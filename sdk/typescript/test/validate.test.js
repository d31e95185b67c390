// Unit tests of the validator (no broker): `npm test` builds first, then runs `node --test test/`.
"use strict";
const assert = require("node:assert/strict");
const path = require("node:path");
const { test } = require("node:test");

const {
  InvalidMemoryEvent,
  MemoryEventValidator,
  MemoryPublisher,
  defaultSchemaPath,
} = require("../dist/publisher.js");

const good = {
  schema_version: 1,
  memory_id: "world:a-1:00000001",
  agent_id: "a-1",
  namespace: "world",
  type: "episodic",
  content: "saw a fox near the river",
  steps: null,
  importance: 0.5,
  emotion: { valence: 0.1, arousal: 0.3 },
  position: { x: 1.5, y: 2, z: null },
  tags: ["theme:nature"],
  event_time: "2026-01-01T00:00:00Z",
  embedding: null,
};

const validator = new MemoryEventValidator();

function reasonOf(event) {
  const r = validator.validate(event);
  assert.equal(r.ok, false, `expected invalid: ${JSON.stringify(event).slice(0, 200)}`);
  return r.reason;
}

test("default schema is the repository's contract", () => {
  assert.equal(
    defaultSchemaPath(),
    path.resolve(__dirname, "..", "..", "..", "schemas", "json", "memory_event.v1.json"),
  );
  assert.deepEqual(validator.supportedVersions, [1]);
});

test("valid events pass", () => {
  assert.deepEqual(validator.validate(good), { ok: true });
  const minimal = { ...good };
  for (const k of ["steps", "importance", "emotion", "position", "tags", "embedding"]) delete minimal[k];
  assert.deepEqual(validator.validate(minimal), { ok: true });
  assert.deepEqual(validator.validate({ ...good, event_time: "2026-01-01T02:00:00.123+02:00" }), { ok: true });
  assert.deepEqual(validator.validate({ ...good, type: "procedural", steps: ["a", "b"] }), { ok: true });
});

test("schema_version is checked first, with a clear reason", () => {
  assert.equal(reasonOf({ ...good, schema_version: 99 }), "unsupported schema_version 99; supported: [1]");
  assert.equal(reasonOf({ ...good, schema_version: "1" }), 'unsupported schema_version "1"; supported: [1]');
  assert.equal(reasonOf({ ...good, schema_version: true }), "unsupported schema_version true; supported: [1]");
  const { schema_version, ...noVersion } = good;
  assert.equal(reasonOf(noVersion), "schema_version is missing");
});

test("field errors name the field", () => {
  assert.match(reasonOf({ ...good, importance: 3 }), /^importance: must be <= 1$/);
  assert.match(reasonOf({ ...good, event_time: "2026-01-01T00:00:00" }), /^event_time: .*date-time/);
  assert.match(reasonOf({ ...good, event_time: "yesterday" }), /^event_time: /);
  assert.match(reasonOf({ ...good, surprise: true }), /^surprise: unknown field/);
  assert.match(reasonOf({ ...good, content: "   " }), /^content: /);
  assert.match(reasonOf({ ...good, agent_id: "-bad" }), /^agent_id: /);
  assert.match(reasonOf({ ...good, type: "dream" }), /^type: must be one of/);
  assert.match(reasonOf({ ...good, emotion: { valence: 2 } }), /^emotion\.valence: /);
  assert.equal(reasonOf({ ...good, position: { x: "a", y: 1 } }), "position.x: must be number");
  const { content, ...noContent } = good;
  assert.equal(reasonOf(noContent), "content: field required");
});

test("rules of the pydantic model outside the JSON Schema", () => {
  assert.match(reasonOf({ ...good, steps: ["x"] }), /^steps: .*procedural/);
  assert.match(reasonOf({ ...good, tags: ["  "] }), /^tags\.0: /);
  // Within every field limit, but over the 64 KiB event limit (4096 floats of 19 characters).
  const big = { ...good, embedding: Array(4096).fill(0.12345678912345678) };
  assert.match(reasonOf(big), /^event is \d+ bytes; the limit is 65536$/);
  assert.match(reasonOf([1, 2]), /must be a JSON object, got array/);
  assert.match(reasonOf(null), /got null/);
});

test("another schema path can be given, and a missing one fails clearly", () => {
  const v = new MemoryEventValidator(defaultSchemaPath());
  assert.deepEqual(v.validate(good), { ok: true });
  assert.throws(() => new MemoryEventValidator("/nonexistent/schema.json"), /cannot load the memory event schema/);
});

test("publish refuses an invalid event before touching Kafka", async () => {
  const pub = new MemoryPublisher({ brokers: ["127.0.0.1:1"] });
  await assert.rejects(pub.publish({ ...good, importance: 3 }), (err) => {
    assert.ok(err instanceof InvalidMemoryEvent);
    assert.equal(err.reason, "importance: must be <= 1");
    return true;
  });
  await assert.rejects(pub.publishMany([good, { ...good, schema_version: 2 }]), /events\[1\]: unsupported schema_version 2/);
  assert.deepEqual(await pub.publishMany([]), []);
  assert.equal(pub.published, 0);
  await pub.disconnect();
});
