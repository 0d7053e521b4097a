// How every driftline producer writes to Kafka.
import kafkajs from './kafkajs.js';
import type { ProducerConfig } from 'kafkajs';

/**
 * Idempotent with one request in flight, so that a retried request is neither doubled nor reordered (a stream's
 * records keep their order); topics are never created by a produce (their partitions and policy are chosen on
 * purpose); keys go to partitions by the Java client's murmur2 hash (kafkajs' default since 2.0, named so that it
 * says so and stays so), so a stream lands on the same partition whichever client produced it.
 */
export const EXACT_PRODUCER: ProducerConfig = {
  idempotent: true,
  maxInFlightRequests: 1,
  allowAutoTopicCreation: false,
  createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
};
