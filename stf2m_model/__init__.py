"""ST-F2M model (PyTorch, optional extra ``[train]``). See docs/model.md."""
