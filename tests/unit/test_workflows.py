"""The GitHub workflows: what they promise (triggers, OIDC, attestations off, the matrix from
the config) and that every `run:` command works. Workflows call the commands a user runs:
each `run:` line is a `make` target that exists, a `build.py` command line that the real
parser accepts (with the matrix's real values), `python -m byoc.matrix`, or one of a few
runner chores listed here. Anything else is logic living only in YAML, and fails."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from byoc import cli, config, matrix

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
PYTHON = ".venv/bin/python"
# Runner chores: allowed as (command, first argument); None allows any argument.
CHORES = {("df", None), ("echo", None), ("nvidia-smi", None), ("sudo", "rm"),
          ("docker", "system"), ("docker", "builder"), ("docker", "image")}
# Make targets that other work adds; each is checked like the rest once it is there.
PENDING_TARGETS: dict[str, str] = {}  # targets a workflow names before the Makefile has them
RUNNER_ENV = {"GITHUB_OUTPUT": "/tmp/github_output", "GITHUB_STEP_SUMMARY": "/tmp/summary"}


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def all_workflows() -> dict[str, dict]:
    return {p.name: load(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


# -- reading `run:` scripts -----------------------------------------------------------------

def _logical_lines(script: str) -> list[str]:
    return [line.strip() for line in script.replace("\\\n", " ").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _commands(line: str) -> list[str]:
    """The simple commands of one shell line: $(...) substitutions pulled out, `&&`, `||`,
    `;` and `|` split, braces and redirections dropped."""
    inner = re.findall(r"\$\(([^()]*)\)", line)
    line = re.sub(r"\$\(([^()]*)\)", "SUBST", line)
    out = []
    for text in [line, *inner]:
        for part in re.split(r"&&|\|\||;|\|", text):
            part = re.sub(r"\d?>>?\s*\S+", "", part).strip().strip("{}").strip()
            if part:
                out.append(part)
    return out


def _expand(text: str, values: dict[str, object], env: dict[str, str]) -> str:
    def expression(m: re.Match) -> str:
        name = m.group(1).strip()
        if name.startswith("matrix."):
            return str(values[name.removeprefix("matrix.")])
        return "X"

    text = re.sub(r"\$\{\{(.*?)\}\}", expression, text)
    return re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?",
                  lambda m: _expand(env[m.group(1)], values, env) if m.group(1) in env
                  else RUNNER_ENV[m.group(1)], text)


def _matrix_of(workflow: dict, job: dict) -> list[dict[str, object]]:
    """The entries a fromJSON matrix expands to: the producing job's byoc.matrix command
    run for real."""
    spec = (job.get("strategy") or {}).get("matrix")
    if spec is None:
        return [{}]
    assert isinstance(spec, str) and "fromJSON(needs." in spec, \
        f"a hand-written matrix: {spec!r}; read it from byoc.matrix"
    producer = workflow["jobs"][re.search(r"needs\.([\w-]+)\.outputs", spec).group(1)]
    for step in producer["steps"]:
        for line in _logical_lines(step.get("run", "")):
            for command in _commands(line):
                argv = shlex.split(command)
                if argv[:3] == [PYTHON, "-m", "byoc.matrix"]:
                    args = matrix.make_parser().parse_args(argv[3:])
                    return matrix.matrix(config.load(), flavor=args.flavor,
                                         variant=args.variant)["include"]
    raise AssertionError("the matrix job does not run `python -m byoc.matrix`")


def run_commands():
    """(where, argv) for every simple command of every `run:` step, once per matrix entry."""
    found = []
    for wf_name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for values in _matrix_of(workflow, job):
                for step in job["steps"]:
                    if "run" not in step:
                        continue
                    env = {**(workflow.get("env") or {}), **(job.get("env") or {}),
                           **(step.get("env") or {})}
                    for line in _logical_lines(step["run"]):
                        for command in _commands(_expand(line, values, env)):
                            where = f"{wf_name} {job_id} {values.get('name', '')}".strip()
                            found.append((where, shlex.split(command)))
    return found


RUN_COMMANDS = run_commands()


def _make_targets() -> list[str]:
    return sorted({t for _, argv in RUN_COMMANDS if argv[0] == "make" for t in argv[1:]
                   if not t.startswith("-")})


def test_every_run_command_is_a_user_command_or_a_listed_chore():
    assert RUN_COMMANDS
    for where, argv in RUN_COMMANDS:
        if argv[0] == "make" or argv[:2] == [PYTHON, "build.py"] or \
                argv[:3] == [PYTHON, "-m", "byoc.matrix"]:
            continue
        first = argv[1] if len(argv) > 1 else None
        assert (argv[0], None) in CHORES or (argv[0], first) in CHORES, \
            f"{where}: `{shlex.join(argv)}` is logic that lives only in YAML"


@pytest.mark.parametrize("target", _make_targets())
def test_make_targets_exist(target):
    proc = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0 and target in PENDING_TARGETS and \
            "No rule to make target" in proc.stderr:
        pytest.xfail(f"make {target}: not in the Makefile yet ({PENDING_TARGETS[target]})")
    assert proc.returncode == 0, f"make -n {target}: {proc.stderr.strip()}"


def test_build_py_command_lines_parse():
    lines = [(where, argv[2:]) for where, argv in RUN_COMMANDS if argv[:2] == [PYTHON, "build.py"]]
    assert {argv[0] for _, argv in lines} >= {"render", "check", "verify", "push",
                                                "torchserve", "triton"}
    for where, argv in lines:
        try:
            cli.parse(argv)
        except Exception as exc:  # UsageError from the parser
            pytest.fail(f"{where}: `build.py {shlex.join(argv)}` does not parse: {exc}")


def test_render_command_lines_run(tmp_path):
    """`build.py render` needs no Docker: run each as the workflow does (into tmp_path) and
    check the context holds what build-push-action reads (target `image`)."""
    renders = [argv[2:] for _, argv in RUN_COMMANDS if argv[:3] == [PYTHON, "build.py", "render"]]
    assert len(renders) == len(config.load())
    for i, argv in enumerate(renders):
        out = tmp_path / str(i)
        argv = argv[:argv.index("--out")] + ["--out", str(out)]
        assert cli.main(argv) == 0, argv
        assert re.search(r"^FROM \S+ AS image$", (out / "Dockerfile").read_text(), re.M)


def test_byoc_matrix_command_lines_parse_and_run(capsys):
    for where, argv in RUN_COMMANDS:
        if argv[:3] == [PYTHON, "-m", "byoc.matrix"]:
            args = matrix.make_parser().parse_args(argv[3:])
            if args.command is None:  # the matrix itself: runs without Docker or AWS
                assert matrix.main(argv[3:]) == 0, where
                assert '"include"' in capsys.readouterr().out


# -- what the workflows promise -------------------------------------------------------------

def _steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action + "@")]


def test_ci_lints_tests_then_runs_contract_tests():
    wf = load("ci.yml")
    assert {"pull_request", "push"} <= set(wf["on"])
    jobs = wf["jobs"]
    runs = {job_id: [s.get("run") for s in job["steps"]] for job_id, job in jobs.items()}
    assert "make lint" in runs["lint"] and "make unit" in runs["unit"]
    assert set(jobs["contract"]["needs"]) == {"lint", "unit"}
    assert "make test" in runs["contract"]  # as .ci/run: setup, lint, unit and Docker tests


def test_images_matrix_comes_from_the_config():
    wf = load("images.yml")
    job = wf["jobs"]["image"]
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    names = {v["name"] for v in _matrix_of(wf, job)}
    assert names == set(config.load())  # every image, flavor x variant [x runtime]


def test_images_build_with_buildkit_attestations_off_then_verify_then_push():
    job = load("images.yml")["jobs"]["image"]
    (build,) = _steps_using(job, "docker/build-push-action")
    opts = build["with"]
    assert opts["context"] == "build/ctx" and opts["target"] == "image"
    assert opts["provenance"] is False and opts["sbom"] is False  # C19: Docker v2 manifest
    assert opts["load"] is True and opts["push"] is False  # build.py push publishes
    assert opts["tags"] == "${{ matrix.image }}"
    assert "type=gha" in opts["cache-from"] and "type=gha" in opts["cache-to"]
    order = [s.get("uses", "").split("@")[0] or s.get("run", "") for s in job["steps"]]

    def index(prefix):
        return next(i for i, s in enumerate(order) if s.startswith(prefix))

    assert index(f"{PYTHON} build.py render") < index("docker/build-push-action") < \
        index(f'{PYTHON} build.py verify') < index(f'{PYTHON} build.py push')


def test_images_push_only_on_main_and_tags_through_oidc():
    wf = load("images.yml")
    assert wf["on"]["push"]["branches"] == ["main"] and wf["on"]["push"]["tags"]
    job = wf["jobs"]["image"]
    assert job["permissions"]["id-token"] == "write"
    assert wf["permissions"] == {"contents": "read"}
    push_when = job["env"]["PUSH"]
    assert "github.event_name == 'push'" in push_when
    assert "refs/heads/main" in push_when and "refs/tags/" in push_when
    (aws,) = _steps_using(job, "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(aws["with"])
    for step in job["steps"]:
        if "configure-aws-credentials" in step.get("uses", "") or \
                "build.py push" in step.get("run", "") or "summary" in step.get("run", ""):
            assert step["if"] == "${{ env.PUSH == 'true' }}", step


def test_no_workflow_uses_long_lived_aws_keys_or_unpinned_actions():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "AWS_SECRET_ACCESS_KEY" not in text and "aws-secret-access-key" not in text
        for action in re.findall(r"uses:\s*(\S+)", text):
            assert re.search(r"@(v\d+|[0-9a-f]{40})$", action), f"{path.name}: {action}"


def test_pushed_uris_go_to_the_job_summary():
    job = load("images.yml")["jobs"]["image"]
    runs = [s.get("run", "") for s in job["steps"]]
    assert any("byoc.matrix summary" in r and "$GITHUB_STEP_SUMMARY" in r for r in runs)
    assert any('--record "build/pushed/$NAME.json"' in r for r in runs)


def test_gpu_builds_free_disk_first_and_say_how_much_they_need():
    job = load("images.yml")["jobs"]["image"]
    names = [s.get("name", "") for s in job["steps"]]
    free = names.index(next(n for n in names if n.startswith("Free disk")))
    assert free == 0 and job["steps"][0]["if"] == "${{ matrix.free_disk }}"
    entries = _matrix_of(load("images.yml"), job)
    assert all(e["free_disk"] for e in entries if e["gpu"])
    assert any("byoc.matrix disk" in s.get("run", "") for s in job["steps"])
    docs = (REPO / "docs" / "github-actions.md").read_text()
    assert f"{matrix.DISK_GB['gpu']} GB" in docs


# -- the AWS side (deploy/aws) --------------------------------------------------------------

AWS = REPO / "deploy" / "aws"


def test_oidc_trust_policy_limits_the_role_to_this_repository_on_main_and_tags():
    policy = json.loads((AWS / "github-oidc-trust-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"] == \
        "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
    condition = statement["Condition"]
    assert condition["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    subjects = condition["StringLike"]["token.actions.githubusercontent.com:sub"]
    assert subjects == ["repo:OWNER/REPO:ref:refs/heads/main",
                        "repo:OWNER/REPO:ref:refs/tags/v*"]
    # what images.yml pushes on must be what the role trusts, and nothing wider
    on_push = load("images.yml")["on"]["push"]
    assert on_push["branches"] == ["main"] and on_push["tags"] == ["v*"]


def test_ecr_policy_is_least_privilege_and_covers_every_configured_repository():
    policy = json.loads((AWS / "ecr-push-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        listed = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        actions.update(listed)
        assert all(a.startswith("ecr:") and "*" not in a for a in listed), listed
        if listed == ["ecr:GetAuthorizationToken"]:
            assert statement["Resource"] == "*"
        else:
            assert statement["Resource"] == "arn:aws:ecr:REGION:ACCOUNT_ID:repository/byoc-*"
            for spec in config.load().values():
                arn = f"arn:aws:ecr:REGION:ACCOUNT_ID:repository/{spec.repository}"
                assert fnmatch.fnmatchcase(arn, statement["Resource"]), spec.repository
    push = {"ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
            "ecr:BatchGetImage", "ecr:GetAuthorizationToken", "ecr:DescribeRepositories"}
    assert push <= actions
    assert not {a for a in actions if re.match(r"ecr:(Delete|BatchDelete|SetRepository)", a)}


def test_aws_readme_explains_both_policy_files():
    readme = (AWS / "README.md").read_text()
    for name in ("github-oidc-trust-policy.json", "ecr-push-policy.json", "AWS_ROLE_ARN",
                 "AWS_REGION", "create-open-id-connect-provider", "put-role-policy"):
        assert name in readme, name


def test_gpu_workflow_is_manual_or_labelled_on_a_self_hosted_runner():
    wf = load("gpu.yml")
    assert set(wf["on"]) == {"workflow_dispatch", "pull_request"}  # no push, no schedule
    assert wf["on"]["pull_request"]["types"] == ["labeled"]
    jobs = wf["jobs"]
    assert "github.event.label.name == 'gpu'" in jobs["matrix"]["if"]
    assert "head.repo.full_name == github.repository" in jobs["matrix"]["if"]  # no forks
    for job_id in ("gpu-check", "gpu-image"):
        assert jobs[job_id]["runs-on"] == ["self-hosted", "gpu"]
    runs = [s.get("run", "") for s in jobs["gpu-check"]["steps"]]
    assert "make gpu-check" in runs
    image_runs = " ".join(s.get("run", "") for s in jobs["gpu-image"]["steps"])
    assert "--test --gpu" in image_runs
    assert {v["variant"] for v in _matrix_of(wf, jobs["gpu-image"])} == {"gpu"}
