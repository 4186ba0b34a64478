"""What every long command runs on: checkpoints written atomically and loaded safely (``checkpoint``,
``safe_load``, ``atomic_json``), run directories that refuse another run's files (``run_directory``) and the
torchrun process group (``distributed``)."""
