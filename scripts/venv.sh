#!/usr/bin/env bash
# One function, sourced by env.sh (the project's .venv) and web_lane.sh (the browser lane's venv): create a
# virtualenv once and (re)install this checkout into it whenever the stamp's inputs change. Defines only; runs
# nothing and sets no shell options.
#
#   her2_ensure_venv VENV EXTRAS TAG STAMP [STAMP_INPUT...]
#
# VENV: the virtualenv folder (its parent is created); EXTRAS: the pyproject extras to install (e.g. "test" or
# "web,webtest"); TAG: the prefix of the progress lines (e.g. "[setup]"); STAMP: the stamp file's name in VENV,
# holding the first 16 hex digits of sha256(pyproject.toml, then each STAMP_INPUT on a line of its own);
# STAMP_INPUT: further text that forces a reinstall when it changes (e.g. the checkout's folder, for a venv shared
# between clones).
# Uses $ROOT (the repository) and $PYTHON (default python3). On a failed install: the log's last lines and one
# "error:" line on stderr, exit 2.
her2_ensure_venv() {
  local venv="$1" extras="$2" tag="$3" stamp="$1/$4"
  shift 4
  local py="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "$tag creating virtualenv $venv" >&2
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
  fi
  local want
  want="$( (cat "$ROOT/pyproject.toml"; [ "$#" -eq 0 ] || printf '%s\n' "$@") | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "$tag installing her2radiomics[$extras] and its pinned dependencies into $venv (first run takes a few minutes)" >&2
    # (the grep drops pip's notes about absent local mirrors configured on some machines)
    "$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
    if ! "$venv/bin/python" -m pip install --quiet -e "$ROOT[$extras]" > "$venv/pip-install.log" 2>&1; then
      grep -v "^WARNING: Location" "$venv/pip-install.log" | tail -n 20 >&2
      echo "error: installing her2radiomics[$extras] into $venv failed (log: $venv/pip-install.log); check network access to PyPI and a C compiler" >&2
      exit 2
    fi
    echo "$want" > "$stamp"
  fi
}
