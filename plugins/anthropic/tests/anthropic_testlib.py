"""Constants shared by the llmfiles-anthropic tests (a module of its own: ``conftest`` names clash when several test
suites are collected together)."""

API_KEY = "sk-ant-api03-test-0123456789abcdefghij"
