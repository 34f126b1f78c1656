import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share two cores with PostgreSQL and the bridge processes they start.
    maxWorkers: 2,
    reporters: ['default'],
    // Two projects, so that only the integration tests pay for a throwaway PostgreSQL:
    // `vitest run --project unit` (npm run test:unit) starts none.
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
