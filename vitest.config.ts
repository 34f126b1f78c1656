import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share two cores with PostgreSQL and the bridge processes they start.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
