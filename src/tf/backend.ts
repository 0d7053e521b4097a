import type * as TF from '@tensorflow/tfjs';

/**
 * TensorFlow.js for the batched offline work (pretraining, teachers) and as the gradient oracle; never on the
 * per-tick path. `@tensorflow/tfjs-node` is optional: its install downloads a native library, which fails on
 * machines without general internet. Where it is missing, this falls back to the WASM backend, then to the
 * plain CPU backend, and says so once.
 */
export type TfBackendName = 'tensorflow' | 'wasm' | 'cpu';

let loaded: Promise<{ tf: typeof TF; backend: TfBackendName }> | undefined;

export function loadTensorFlow(
  options: { prefer?: TfBackendName; log?: (message: string) => void } = {},
): Promise<{ tf: typeof TF; backend: TfBackendName }> {
  loaded ??= load(options.prefer ?? 'tensorflow', options.log ?? ((m) => process.emitWarning(m)));
  return loaded;
}

async function load(prefer: TfBackendName, log: (message: string) => void): Promise<{ tf: typeof TF; backend: TfBackendName }> {
  const order: TfBackendName[] = prefer === 'cpu' ? ['cpu'] : prefer === 'wasm' ? ['wasm', 'cpu'] : ['tensorflow', 'wasm', 'cpu'];
  const reasons: string[] = [];
  for (const name of order) {
    try {
      if (name === 'tensorflow') {
        const tfNode = (await import('@tensorflow/tfjs-node' as string)) as typeof TF;
        await tfNode.setBackend('tensorflow');
        await tfNode.ready();
        return { tf: tfNode, backend: 'tensorflow' };
      }
      const tf = await import('@tensorflow/tfjs');
      if (name === 'wasm') {
        await import('@tensorflow/tfjs-backend-wasm');
        if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
      } else {
        await tf.setBackend('cpu');
      }
      await tf.ready();
      if (reasons.length > 0) log(`driftline: TensorFlow.js runs on its ${name} backend (${reasons.join('; ')})`);
      return { tf, backend: name };
    } catch (error) {
      reasons.push(`${name}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be loaded: ${reasons.join('; ')}`);
}
