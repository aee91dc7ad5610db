"""Build-time tools: code generation from proto/. Never imported by the running platform."""
