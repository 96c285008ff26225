"""Dataset builders (DISFA-FER, WFLW-FER). See docs/datasets.md."""
