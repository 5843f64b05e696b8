import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import jest from 'eslint-plugin-jest'
import prettier from 'eslint-config-prettier'
import globals from 'globals'

export default tseslint.config(
  {ignores: ['dist/', 'lib/', 'node_modules/', 'coverage/']},
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: {...globals.node},
      parserOptions: {project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname}
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_'}]
    }
  },
  {files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked},
  {files: ['__tests__/**/*.ts'], ...jest.configs['flat/recommended']},
  prettier
)
