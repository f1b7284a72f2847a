# Shared by fate_setup.sh and flower_setup.sh: create (or check) a peer's own virtual environment.
# Sourced, not run.  The caller sets, then calls `peer_venv_main "$@"`:
#   tag     short name for messages ("fate_setup")       what    the peer's name ("FATE")
#   stem    names the venv's stamp, pip log and freeze files (".jointly-<stem>-pins", ...)
#   venv    where the venv goes                          py      the interpreter to base it on
#   pyvar   the variable that overrides `py`             peer    the peer script to run afterwards
#   pins    array of exact pins                          verify  function: the import check that counts
# The venv is set up once: a stamp file holds the pins, and a venv whose stamp matches and whose
# import check passes is left alone.  --force deletes and recreates it.

say() { printf '[%s] %s\n' "$tag" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$tag" "$*" >&2; exit 1; }

peer_venv_main() {
  local stamp="$venv/.jointly-$stem-pins" log="$venv/.jointly-$stem-pip.log" want versions pyver
  want="$(printf '%s\n' "${pins[@]}")"
  if [[ "${1:-}" == "--force" ]]; then
    say "--force: removing $venv"
    rm -rf "$venv"
  elif [[ $# -gt 0 ]]; then
    die "unknown argument: $1 (only --force is accepted)"
  fi

  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    if versions="$(verify 2>&1)"; then
      say "already set up, nothing to do: $venv"
      say "$versions"
      return 0
    fi
    say "existing venv failed its check, reinstalling pins:"
    printf '%s\n' "$versions" | tail -5 >&2
  fi

  if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$py" >/dev/null 2>&1 || die "no '$py' on PATH; set $pyvar to a Python 3.11 interpreter"
    pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "'$py' does not run"
    [[ "$pyver" == "3.11" ]] || say "WARNING: $py is Python $pyver; this setup was verified with 3.11 only"
    say "creating venv $venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$py" -m venv "$venv" || die "'$py -m venv $venv' failed (Debian: apt-get install python3.11-venv)"
  else
    say "reusing venv $venv ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  fi

  say "installing: ${pins[*]}"
  say "(first time: ~1 GB with the local CPU torch, several GB without; a few minutes)"
  if ! "$venv/bin/python" -m pip install --no-input "${pins[@]}" >"$log" 2>&1; then
    grep -v "^WARNING: Location 'file:" "$log" | tail -25 >&2
    die "pip install failed (full log: $log)"
  fi
  "$venv/bin/python" -m pip check >>"$log" 2>&1 \
    || say "WARNING: 'pip check' reports conflicts (see $log); continuing, the import check decides"

  if ! versions="$(verify 2>&1)"; then
    printf '%s\n' "$versions" | tail -20 >&2
    die "$what does not import in $venv (see above)"
  fi
  printf '%s\n' "$want" >"$stamp"
  "$venv/bin/python" -m pip freeze >"$venv/.jointly-$stem-freeze.txt" 2>/dev/null || true
  say "done: $venv"
  say "$versions"
  say "full list of installed versions: $venv/.jointly-$stem-freeze.txt"
  say "run: $venv/bin/python $peer --help"
}
