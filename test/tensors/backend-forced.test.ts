import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError, currentBackendInfo, initTensorBackend } from '../../src/core/tensors/backend';

// A failed forced start leaves nothing chosen, so these run in order in one process.
test.each(['tensorflow', 'webgpu'] as const)('forcing %s where it cannot start is a clear error', async (name) => {
  const attempt = initTensorBackend(name);
  await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
  await expect(attempt).rejects.toThrow(new RegExp(`tensor backend '${name}' was requested .* cannot start: .+`));
  expect(currentBackendInfo()).toBeUndefined();
});

test('forcing cpu starts cpu', async () => {
  const info = await initTensorBackend('cpu');
  expect(info.name).toBe('cpu');
  expect(tf.getBackend()).toBe('cpu');
  expect(currentBackendInfo()).toBe(info);
});
