"""One adapter per model server, named after its flavor (byoc/flavors/NAME.py builds it).

Each module defines Backend (what serve and the front drive: command, env, ready,
invoke) and check_model(model_dir) (the build-time check, byoc_runtime.check_model)."""
