#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine that SkyPilot (>= 0.14) can run CPU cluster jobs on, offline.
#
#   sudo scripts/slurm/up.sh [SKY_HOME]
#
# SKY_HOME (or $OVERNIGHT_SKY_HOME; default /tmp/overnight-sky-home) is the HOME that SkyPilot's client and API server
# run with: this script writes SKY_HOME/.slurm/config there, naming the cluster "localslurm" (infra slurm/localslurm).
# Idempotent: a second run only checks what is already up.
#
# Exit codes: 0 ready; 77 cannot run on this machine (one line on stderr says why: not root, packages unavailable, no
# Python 3.10, ...); 1 anything else (the message says what failed). See README.md for what each piece is for.
#
# Knobs (env): OVERNIGHT_SKY_HOME, OVERNIGHT_SLURM_SSH_PORT (2222), OVERNIGHT_SLURM_USER (skyslurm),
# OVERNIGHT_SLURM_NAME (localslurm), OVERNIGHT_SLURM_DIR (/opt/overnight-slurm: binaries, sshd config, keys, logs),
# OVERNIGHT_PYTHON310 (a python3.10 to use when none is found).
set -euo pipefail

SKY_HOME=${1:-${OVERNIGHT_SKY_HOME:-/tmp/overnight-sky-home}}
SSH_PORT=${OVERNIGHT_SLURM_SSH_PORT:-2222}
RUSER=${OVERNIGHT_SLURM_USER:-skyslurm}
NAME=${OVERNIGHT_SLURM_NAME:-localslurm}
STATE=${OVERNIGHT_SLURM_DIR:-/opt/overnight-slurm}
PACKAGES=(slurmctld slurmd slurm-client munge openssh-server rsync socat netcat-openbsd patchelf curl ca-certificates)
SLURM_CONF=/etc/slurm/slurm.conf
UV_INSTALLER_URL=https://astral.sh/uv/install.sh

cannot() { echo "scripts/slurm/up.sh: cannot run here: $*" >&2; exit 77; }
fail() { echo "scripts/slurm/up.sh: failed: $*" >&2; exit 1; }
say() { echo "[slurm-up] $*"; }
t0=$SECONDS

[ "$(id -u)" = 0 ] || cannot "must run as root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || cannot "no apt-get/dpkg (a Debian-like system is needed)"
case $NAME in *[!a-z0-9-]* | "") fail "OVERNIGHT_SLURM_NAME must be lowercase letters, digits and '-'" ;; esac
case $SKY_HOME in /*) ;; *) SKY_HOME=$PWD/$SKY_HOME ;; esac

# ---------------------------------------------------------------- Debian packages
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} ..."
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/overnight-slurm-apt.log 2>&1; }
  if ! apt_install; then
    { apt-get update -qq >>/tmp/overnight-slurm-apt.log 2>&1 && apt_install; } \
      || cannot "apt-get could not install ${missing[*]} (log: /tmp/overnight-slurm-apt.log)"
  fi
fi

mkdir -p "$STATE"/{bin,run,log,ssh}
chmod 755 "$STATE" "$STATE/bin"

# ---------------------------------------------------------------- munge
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged ..."
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || fail "munged does not answer (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- slurm.conf + daemons
node=$(hostname -s)
node_hw=$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
[ -n "$node_hw" ] || fail "slurmd -C gave no node description"
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
conf_new=$(cat <<EOF
# Written by overnight's scripts/slurm/up.sh: a one-node cluster for SkyPilot on localhost.
ClusterName=$NAME
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 ${node_hw}State=UNKNOWN
PartitionName=$NAME Nodes=$node Default=YES MaxTime=INFINITE DefaultTime=30-00:00:00 State=UP OverSubscribe=NO
EOF
)
restart_slurm=0
if [ "$(cat "$SLURM_CONF" 2>/dev/null)" != "$conf_new" ]; then
  printf '%s\n' "$conf_new" >"$SLURM_CONF"; chmod 644 "$SLURM_CONF"; restart_slurm=1
fi
stop_pidfile() {  # stop the daemon whose pid is in $1 (if any) and wait for it to go
  pid_alive "$1" || return 0
  local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}
if [ $restart_slurm = 1 ]; then stop_pidfile /run/slurmd.pid; stop_pidfile /run/slurmctld.pid; fi
if ! pid_alive /run/slurmctld.pid; then
  say "starting slurmctld ..."
  /usr/sbin/slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q "is UP" || fail "slurmctld does not answer (see /var/log/slurm/slurmctld.log)"
if ! pid_alive /run/slurmd.pid; then
  say "starting slurmd ..."
  /usr/sbin/slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi
node_state() { sinfo -h -n "$node" -o %T 2>/dev/null | head -1; }
for _ in $(seq 100); do
  case $(node_state) in
    idle* | mixed* | allocated* | completing*) break ;;
    down* | drain* | fail*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case $(node_state) in
  idle* | mixed* | allocated* | completing*) ;;
  *) fail "node $node is '$(node_state)', not idle (see /var/log/slurm/slurmd.log, scontrol show node)" ;;
esac

# ---------------------------------------------------------------- the remote user SkyPilot logs in as
if ! id "$RUSER" >/dev/null 2>&1; then
  say "creating user $RUSER ..."
  useradd --create-home --shell /bin/bash "$RUSER"
fi
RHOME=$(getent passwd "$RUSER" | cut -d: -f6)
[ -d "$RHOME" ] || { mkdir -p "$RHOME"; chown "$RUSER:" "$RHOME"; }
# sshd without PAM refuses a locked account ('!' in shadow); '*' keeps password login impossible but unlocks keys.
case $(getent shadow "$RUSER" | cut -d: -f2) in '!'* | '') usermod -p '*' "$RUSER" ;; esac
chmod 755 "$RHOME"
install -d -o "$RUSER" -g "$(id -gn "$RUSER")" -m 700 "$RHOME/.ssh"
[ -s "$STATE/ssh/client_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "overnight-$NAME" -f "$STATE/ssh/client_ed25519"
pub=$(cat "$STATE/ssh/client_ed25519.pub")
touch "$RHOME/.ssh/authorized_keys"
grep -qxF "$pub" "$RHOME/.ssh/authorized_keys" || printf '%s\n' "$pub" >>"$RHOME/.ssh/authorized_keys"
chown "$RUSER:" "$RHOME/.ssh/authorized_keys"; chmod 600 "$RHOME/.ssh/authorized_keys"

# ---------------------------------------------------------------- offline block 1: uv's installer (curl | sh)
if [ ! -x "$STATE/uv/uv" ]; then
  say "fetching the uv binary from the uv wheel on the package index ..."
  py=$(command -v python3 || true); [ -n "$py" ] || cannot "no python3 to download the uv wheel with"
  tmp=$(mktemp -d)
  "$py" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" uv >"$tmp/log" 2>&1 \
    || { rm -rf "$tmp"; cannot "pip could not download the 'uv' wheel (no package index reachable?)"; }
  "$py" - "$tmp" "$STATE/uv" <<'PY' || { rm -rf "$tmp"; fail "no uv binary in the downloaded wheel"; }
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with zipfile.ZipFile(glob.glob(os.path.join(src, "uv-*.whl"))[0]) as wheel:
    for member in wheel.namelist():
        if "/scripts/" in member and os.path.basename(member) in ("uv", "uvx"):
            out = os.path.join(dst, os.path.basename(member))
            with open(out + ".tmp", "wb") as f:
                f.write(wheel.read(member))
            os.chmod(out + ".tmp", 0o755)
            os.replace(out + ".tmp", out)
sys.exit(0 if os.path.exists(os.path.join(dst, "uv")) else 1)
PY
  rm -rf "$tmp"
  chmod 755 "$STATE/uv"
fi
real_curl=$(PATH=/usr/local/bin:/usr/bin:/bin command -v curl || echo /usr/bin/curl)
cat >"$STATE/bin/curl.tmp" <<EOF
#!/bin/sh
# overnight scripts/slurm/up.sh: answers SkyPilot's "curl $UV_INSTALLER_URL | sh" (no internet here) with a script that
# copies a uv binary taken from PyPI's uv wheel; every other call goes to the real curl.
for arg in "\$@"; do
  if [ "\$arg" = "$UV_INSTALLER_URL" ]; then
    cat <<'INSTALLER'
#!/bin/sh
set -e
dir="\${UV_INSTALL_DIR:-\${XDG_BIN_HOME:-\$HOME/.local/bin}}"
mkdir -p "\$dir"
for b in uv uvx; do
  [ -x "$STATE/uv/\$b" ] || continue
  cp "$STATE/uv/\$b" "\$dir/.\$b.\$\$" && chmod 755 "\$dir/.\$b.\$\$" && mv -f "\$dir/.\$b.\$\$" "\$dir/\$b"
done
echo "uv installed to \$dir (offline copy from $STATE/uv)"
INSTALLER
    exit 0
  fi
done
exec $real_curl "\$@"
EOF
chmod 755 "$STATE/bin/curl.tmp"; mv -f "$STATE/bin/curl.tmp" "$STATE/bin/curl"

# ---------------------------------------------------------------- offline block 2: `uv venv --python 3.10`
py310_ok() { runuser -u "$RUSER" -- "$STATE/bin/python3.10" -c 'import ssl, sqlite3, venv' >/dev/null 2>&1; }
if ! py310_ok; then
  src=""
  for c in "${OVERNIGHT_PYTHON310:-}" /usr/bin/python3.10 /usr/local/bin/python3.10 /root/.pyenv/versions/3.10*/bin/python3.10 \
    /opt/python*/3.10*/bin/python3.10 /root/.local/share/uv/python/cpython-3.10*/bin/python3.10 "$(command -v python3.10 || true)"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    "$c" -c 'import sys, ssl, sqlite3; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { src=$c; break; }
  done
  [ -n "$src" ] || cannot "no Python 3.10 found (SkyPilot's remote runtime needs one; set OVERNIGHT_PYTHON310=/path/to/python3.10)"
  prefix=$("$src" -c 'import sys; print(sys.base_prefix)')
  if runuser -u "$RUSER" -- "$src" -c 'import ssl' >/dev/null 2>&1; then
    say "python3.10 for $RUSER: $src"
    ln -sfn "$src" "$STATE/bin/python3.10"
  else
    say "copying Python 3.10 from $prefix (not readable by $RUSER) ..."
    rm -rf "$STATE/python3.10.tmp"; mkdir -p "$STATE/python3.10.tmp"
    tar -C "$prefix" --exclude='lib/python3.10/test' --exclude='*/__pycache__' -cf - . | tar -C "$STATE/python3.10.tmp" -xf -
    exe=$STATE/python3.10.tmp/bin/$(basename "$(readlink -f "$src")")
    [ -x "$exe" ] || exe=$STATE/python3.10.tmp/bin/python3.10
    # A relocated build finds its libpython through its rpath: point that at the copy.
    if readelf -d "$exe" 2>/dev/null | grep -qE 'R(UN)?PATH' || ldd "$exe" | grep -q 'libpython3.10'; then
      patchelf --set-rpath '$ORIGIN/../lib' "$exe"
    fi
    chmod -R a+rX "$STATE/python3.10.tmp"
    rm -rf "$STATE/python3.10"; mv "$STATE/python3.10.tmp" "$STATE/python3.10"
    ln -sfn "$STATE/python3.10/bin/python3.10" "$STATE/bin/python3.10"
  fi
  py310_ok || fail "python3.10 at $STATE/bin/python3.10 does not run for $RUSER"
fi

# ---------------------------------------------------------------- offline block 3: TLS through the proxy, pip's index
# uv ships its own CA roots; the registry proxy here has its own CA, which only the system bundle holds.
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
pip_cfg=$(python3 -m pip config list 2>/dev/null || true)
pip_get() {  # the value pip would use for option $1 (env first, then config files)
  printf '%s\n' "$pip_cfg" | sed -n "s/^:env:\.$1='\(.*\)'\$/\1/p; s/^[a-z]*\.$1='\(.*\)'\$/\1/p" | head -1
}
index_url=$(pip_get index-url); extra_urls=$(pip_get extra-index-url); find_links=$(pip_get find-links)
{
  echo "# Written by overnight's scripts/slurm/up.sh; sourced by ~/.bash_profile and ~/.bashrc of $RUSER."
  echo "case \":\$PATH:\" in *\":$STATE/bin:\"*) ;; *) export PATH=\"$STATE/bin:\$PATH\" ;; esac"
  # Newer uv names the switch UV_SYSTEM_CERTS (and warns on UV_NATIVE_TLS); older ones only know UV_NATIVE_TLS.
  if "$STATE/uv/uv" pip install --help 2>/dev/null | grep -q UV_SYSTEM_CERTS; then tls_var=UV_SYSTEM_CERTS; else tls_var=UV_NATIVE_TLS; fi
  [ -f "$ca" ] && echo "export SSL_CERT_FILE=$ca $tls_var=1"
  [ -n "$index_url" ] && echo "export UV_DEFAULT_INDEX='$index_url' UV_INDEX_URL='$index_url' PIP_INDEX_URL='$index_url'"
  if [ -n "$extra_urls" ] || [ -n "$find_links" ]; then
    # pip merges all indexes and picks the best version; uv's default takes the first index that has a package.
    echo "export UV_INDEX_STRATEGY=unsafe-best-match"
    [ -n "$extra_urls" ] && echo "export UV_EXTRA_INDEX_URL='$extra_urls' PIP_EXTRA_INDEX_URL='$extra_urls'"
    [ -n "$find_links" ] && echo "export UV_FIND_LINKS='${find_links// /,}' PIP_FIND_LINKS='$find_links'"
  fi
  true
} >"$STATE/remote-env.sh"
chmod 644 "$STATE/remote-env.sh"
hook=". $STATE/remote-env.sh  # overnight scripts/slurm/up.sh"
# Login shells (SkyPilot runs `bash --login -c ...` over ssh) read ~/.bash_profile; non-interactive non-login shells
# read neither, so the env rides along through srun (which exports the caller's environment).
for rc in .bash_profile .bashrc; do
  f=$RHOME/$rc
  [ -f "$f" ] || { [ $rc = .bash_profile ] && printf '[ -f ~/.profile ] && . ~/.profile\n' >"$f"; } || touch "$f"
  if ! grep -qxF "$hook" "$f"; then { printf '%s\n' "$hook"; cat "$f"; } >"$f.tmp" && mv "$f.tmp" "$f"; fi
  chown "$RUSER:" "$f"
done

# ---------------------------------------------------------------- the dedicated sshd on 127.0.0.1
[ -s "$STATE/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -f "$STATE/ssh/host_ed25519"
strict=yes; case $RHOME in /tmp/* | /var/tmp/*) strict=no ;; esac
sshd_new=$(cat <<EOF
# Written by overnight's scripts/slurm/up.sh: SkyPilot's way into the local Slurm "login node".
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $STATE/ssh/host_ed25519
PidFile $STATE/run/sshd.pid
AllowUsers $RUSER
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes $strict
AcceptEnv SKY_CLUSTER_NAME
MaxSessions 64
MaxStartups 64:30:128
X11Forwarding no
AllowTcpForwarding yes
PrintMotd no
Subsystem sftp internal-sftp
EOF
)
restart_sshd=0
if [ "$(cat "$STATE/sshd_config" 2>/dev/null)" != "$sshd_new" ]; then
  printf '%s\n' "$sshd_new" >"$STATE/sshd_config"; restart_sshd=1
fi
mkdir -p /run/sshd; chmod 755 /run/sshd
/usr/sbin/sshd -t -f "$STATE/sshd_config" || fail "sshd rejects $STATE/sshd_config"
[ $restart_sshd = 1 ] && stop_pidfile "$STATE/run/sshd.pid"
if ! pid_alive "$STATE/run/sshd.pid"; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null; then
    fail "port $SSH_PORT on 127.0.0.1 is taken by another program; set OVERNIGHT_SLURM_SSH_PORT to a free port"
  fi
  say "starting sshd on 127.0.0.1:$SSH_PORT ..."
  /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/log/sshd.log"
fi
ssh_opts=(-p "$SSH_PORT" -i "$STATE/ssh/client_ed25519" -o BatchMode=yes -o IdentitiesOnly=yes
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)
check=""
for _ in $(seq 30); do
  check=$(ssh "${ssh_opts[@]}" "$RUSER@127.0.0.1" \
    'bash --login -c "command -v curl python3.10; python3.10 -V; sinfo -h -o %T; echo SSL_CERT_FILE=\$SSL_CERT_FILE"' 2>&1) && break
  sleep 0.3
done
case $check in
  *"$STATE/bin/curl"*"$STATE/bin/python3.10"*"Python 3.10"*SSL_CERT_FILE=/*) ;;
  *) fail "ssh $RUSER@127.0.0.1:$SSH_PORT does not give the expected shell (see $STATE/log/sshd.log): $check" ;;
esac

# ---------------------------------------------------------------- SkyPilot's side: SKY_HOME/.slurm/config
mkdir -p "$SKY_HOME/.slurm"
install -m 600 "$STATE/ssh/client_ed25519" "$SKY_HOME/.slurm/$NAME-key"
cfg_block=$(cat <<EOF
# overnight scripts/slurm/up.sh: begin $NAME
Host $NAME
  HostName 127.0.0.1
  Port $SSH_PORT
  User $RUSER
  IdentityFile $SKY_HOME/.slurm/$NAME-key
  IdentitiesOnly yes
# overnight scripts/slurm/up.sh: end $NAME
EOF
)
cfg=$SKY_HOME/.slurm/config
others=""
[ -f "$cfg" ] && others=$(sed "/^# overnight scripts\/slurm\/up.sh: begin $NAME\$/,/^# overnight scripts\/slurm\/up.sh: end $NAME\$/d" "$cfg")
{ [ -n "$others" ] && printf '%s\n\n' "$others"; printf '%s\n' "$cfg_block"; } >"$cfg.tmp" && mv -f "$cfg.tmp" "$cfg"
chmod 600 "$cfg"
# The config and key must belong to whoever owns SKY_HOME (SkyPilot may run as that user).
owner=$(stat -c %U:%G "$SKY_HOME"); chown -R "$owner" "$SKY_HOME/.slurm"

say "ready in $((SECONDS - t0)) s: Slurm node $node ($(sinfo -h -n "$node" -o '%c CPUs, %m MB, %T')), partition $NAME," \
  "ssh $RUSER@127.0.0.1:$SSH_PORT, SkyPilot config $cfg"
echo "infra: slurm/$NAME   (run SkyPilot with HOME=$SKY_HOME)"
