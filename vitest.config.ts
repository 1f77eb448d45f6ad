import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Many tests start the CLI several times; node's start-up alone took 5 s each at load ~14 on two cores.
    testTimeout: 60_000,
    // Most long files wait on sandboxes, VMs and daemons rather than compute: three at a time on two cores
    // (vitest's default here would be one).
    maxWorkers: 3,
    hookTimeout: 60_000,
    // The JSON report feeds the CI summary line; the default reporter is for people.
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
  },
});
