"""Does the trace cause the answer? The trace-level tests (step validity, early answering, filler, inserted
mistakes, paraphrase, resilience), one module each; `run.run_causality` runs the chosen ones."""
