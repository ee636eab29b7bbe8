# Network of the local multi-node SLURM cluster (sourced by start-/stop-local-cluster.sh): every "node" is a
# network namespace litd-nI with its own UTS namespace (hostname litd-nI, set when its slurmd starts), and
# slurmctld lives in a namespace litd-ctl of its own that holds two bridges:
#   mgmt   10.254.0.0/24  SLURM's traffic (slurmctld 10.254.0.1, node I at 10.254.0.(10+I), NodeAddr)
#   fabric 10.254.1.0/24  training traffic (node I at 10.254.1.(10+I)): a node's hostname resolves to it
# as on a cluster whose nodes talk over a separate fabric; taking a node's `fab0` down cuts its training
# traffic while SLURM still reaches it. Every address lives inside these namespaces: the host gets none
# (its SLURM commands reach slurmctld through slurm/forward_port.py on 127.0.0.1).
# A daemon starts in its namespace through `run_in NS COMMAND`: the network namespace (nsenter, which keeps
# /sys and its cgroup mount, unlike `ip netns exec`, which remounts /sys and slurmd then fails with "No
# filesystem mounted on /sys/fs/cgroup"), a UTS namespace with the hostname NS, and a private mount namespace
# where /etc/netns/NS/hosts and /etc/netns/NS/slurm are bound over /etc/hosts and /etc/slurm.

NET_PREFIX=litd
CTL_NS=${NET_PREFIX}-ctl
MGMT=10.254.0
FABRIC=10.254.1

node_name() { echo "${NET_PREFIX}-n$1"; }

make_network() {  # make_network NODES
  local n=$1 i node
  ip netns add "$CTL_NS"
  ip -n "$CTL_NS" link set lo up
  ip -n "$CTL_NS" link add mgmt type bridge
  ip -n "$CTL_NS" link add fabric type bridge
  ip -n "$CTL_NS" addr add "$MGMT.1/24" dev mgmt
  ip -n "$CTL_NS" link set mgmt up
  ip -n "$CTL_NS" link set fabric up
  for i in $(seq "$n"); do
    node=$(node_name "$i")
    ip netns add "$node"
    ip -n "$node" link set lo up
    # veth pairs made inside the namespaces: nothing is created in the host's namespace
    ip -n "$CTL_NS" link add "m$i" type veth peer name eth0 netns "$node"
    ip -n "$CTL_NS" link add "f$i" type veth peer name fab0 netns "$node"
    ip -n "$CTL_NS" link set "m$i" master mgmt up
    ip -n "$CTL_NS" link set "f$i" master fabric up
    ip -n "$node" addr add "$MGMT.$((10 + i))/24" dev eth0
    ip -n "$node" addr add "$FABRIC.$((10 + i))/24" dev fab0
    ip -n "$node" link set eth0 up
    ip -n "$node" link set fab0 up
  done
}

write_hosts() {  # write_hosts NODES: /etc/netns/NS/hosts for every namespace
  local n=$1 i ns
  for ns in "$CTL_NS" $(for i in $(seq "$n"); do node_name "$i"; done); do
    mkdir -p "/etc/netns/$ns"
    {
      echo "127.0.0.1 localhost"
      echo "$MGMT.1 $CTL_NS"
      for i in $(seq "$n"); do echo "$FABRIC.$((10 + i)) $(node_name "$i")"; done
    } > "/etc/netns/$ns/hosts"
  done
}

run_in() {  # run_in NS COMMAND...: COMMAND as the host NS (see the header)
  local ns=$1; shift
  nsenter --net="/var/run/netns/$ns" unshare --mount --uts --propagation private sh -c \
    'ns=$1; shift; hostname "$ns" && mount --bind "/etc/netns/$ns/hosts" /etc/hosts \
     && mount --bind "/etc/netns/$ns/slurm" /etc/slurm && exec "$@"' run_in "$ns" "$@"
}

our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NET_PREFIX}-(ctl|n[0-9]+)$" || true; }

remove_network() {  # deleting a namespace deletes its veth ends and their peers
  local ns
  for ns in $(our_namespaces); do
    ip netns del "$ns" && echo "stop-local-cluster: removed network namespace $ns"
    rm -rf "/etc/netns/$ns"
  done
}
