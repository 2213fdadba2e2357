import * as tf from '@tensorflow/tfjs';
import { currentBackendInfo, initTensorBackend } from '../../src/core/tensors/backend';

// Each Jest file has its own module registry, so the once-per-process choice starts unset here.
test('with no native TensorFlow and no GPU, the automatic choice is wasm, quickly and idempotently', async () => {
  expect(currentBackendInfo()).toBeUndefined();
  const started = Date.now();
  const info = await initTensorBackend();
  expect(Date.now() - started).toBeLessThan(5000);
  expect(info.name).toBe('wasm');
  expect(info.tfjsVersion).toBe(tf.version_core);
  expect(info.threads).toBeGreaterThanOrEqual(1);
  expect(info.detail).toMatch(/tfjs-backend-wasm/);
  expect(tf.getBackend()).toBe('wasm');
  expect(await initTensorBackend()).toBe(info);
  expect(await initTensorBackend('wasm')).toBe(info);
  expect(currentBackendInfo()).toBe(info);
  await expect(initTensorBackend('cpu')).rejects.toThrow(/already runs tensors on 'wasm'/);
});
