"""White-box methods on a local model through TransformerLens hooks: receiver heads (`receivers`), attention
suppression (`suppression`), activation patching (`patching`); `sequence` turns a trace into token spans."""
