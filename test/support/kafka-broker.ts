// The real Kafka broker the integration tests use (scripts/kafka/broker.sh start; npm test starts it).
// The bootstrap address comes from DRIFTLINE_KAFKA_BROKERS, else from <run dir>/brokers (run dir:
// DRIFTLINE_KAFKA_RUN or <repo>/.kafka). Without either, a test skips with the reason printed; CI treats that skip
// as a failure. kafkajs logs are off unless DRIFTLINE_TEST_LOGS is set.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from '../../src/adapters/kafka/kafkajs.js';
import type { Kafka } from 'kafkajs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The broker addresses, or why there are none. */
export function findBrokers(): { brokers?: string[]; reason?: string } {
  const fromEnv = process.env.DRIFTLINE_KAFKA_BROKERS?.trim();
  if (fromEnv) return { brokers: fromEnv.split(',').map((s) => s.trim()).filter(Boolean) };
  const runDir = process.env.DRIFTLINE_KAFKA_RUN || join(REPO_ROOT, '.kafka');
  const file = join(runDir, 'brokers');
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text) return { brokers: text.split(/[\s,]+/).filter(Boolean) };
    return { reason: `${file} is empty` };
  } catch {
    return {
      reason: `no Kafka broker: DRIFTLINE_KAFKA_BROKERS is unset and ${file} does not exist ` +
        `(start one with: bash scripts/kafka/broker.sh start)`,
    };
  }
}

/** A kafkajs client for a test, quiet unless DRIFTLINE_TEST_LOGS is set. */
export function testKafka(brokers: string[], clientId: string): Kafka {
  return new kafkajs.Kafka({
    clientId,
    brokers,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    logLevel: process.env.DRIFTLINE_TEST_LOGS ? kafkajs.logLevel.INFO : kafkajs.logLevel.NOTHING,
  });
}

/** Rejects after ms; the wrapped promise is not cancelled. */
export function within<T>(ms: number, label: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
