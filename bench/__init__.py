"""The benchmark suite: `python -m bench` runs it; README.md says what each figure means."""
