# (part of kengine_ext._core; being written)
