"""Context for models: packs of a repository within a token budget, and conversations windowed to one."""
