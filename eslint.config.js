import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Layers that hold (issue 10). `src/` is built in this dependency order: a module may import the
 * foundation (config, util, errors, domain) and the stages before its own, never a later one, and
 * nothing but `cli` imports `cli` or `demo`. So a status store cannot reach into the pipeline that
 * uses it, and the daemon's wiring stays out of the commands. `test/unit/layers.test.ts` shows an
 * upward import failing this rule.
 *
 *   decode -> source -> mapping -> tuzhan -> status -> delivery -> batching -> router -> ops -> pipeline
 *     -> daemon.ts -> simulator -> throwaway -> demo -> cli
 */
const STAGES = [
  ['decode'],
  ['source'],
  ['mapping'],
  ['tuzhan'],
  ['status'],
  ['delivery'],
  ['batching'],
  ['router'],
  ['ops'],
  ['pipeline'],
  ['daemon.ts'],
  ['simulator'],
  ['throwaway'],
  ['demo'],
  ['cli'],
];

/** Import patterns of a stage: a directory (`**\/status/*`) or a module at the top of src/. */
const patternsOf = (stage) =>
  stage.map((s) => (s.endsWith('.ts') ? `**/${s.replace(/\.ts$/, '.js')}` : `**/${s}/*`));
const filesOf = (stage) => stage.map((s) => (s.endsWith('.ts') ? `src/${s}` : `src/${s}/**`));

const layers = STAGES.slice(0, -1).map((stage, i) => ({
  files: filesOf(stage),
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: STAGES.slice(i + 1).flatMap(patternsOf),
            message: `${stage.join(', ')} must not import a later stage (eslint.config.js lists the order)`,
          },
        ],
      },
    ],
  },
}));

const foundation = {
  files: ['src/config/**', 'src/util/**', 'src/errors.ts', 'src/domain/**'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: STAGES.flatMap(patternsOf),
            message: 'the foundation (config, util, errors, domain) must not import a stage',
          },
        ],
      },
    ],
  },
};

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'coverage/',
      'bench/results/',
      '.tmp/',
      'reports/mutation/',
      '.stryker-tmp/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The web console's page runs in the browser as served (src/ops/console/static, no build step).
    files: ['src/ops/console/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'sessionStorage',
          'fetch',
          'Node',
          'URLSearchParams',
          'confirm',
          'setTimeout',
          'setInterval',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  foundation,
  ...layers,
);
