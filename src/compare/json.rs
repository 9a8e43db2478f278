//! JSON mode: structural comparison with ignore/only/tolerance/unordered arrays.
