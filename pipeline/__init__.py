"""The product's logic: settings, input spec, content kinds, planner, paths (hybrid / AR / fallback),
orchestrator and storage. No model math (generators/) and no Celery (workers/)."""
