"""The e2e scenarios, in the order the suite runs them: (name, function(Cluster)). Each module
holds one scenario; the first line of its function's docstring is the scenario's title."""

from . import caching_resolver, consul_flow, etcd_cluster, ipv6_pods, pod_new_ip, scale_3_to_5, zookeeper_dir
from . import etcd_lifecycle, nats_cluster, redis_sentinel, zookeeper_ensemble
from . import kafka_cluster, rabbitmq_cluster

SCENARIOS = [
    ("consul-flow", consul_flow.run),
    ("etcd-cluster", etcd_cluster.run),
    ("pod-new-ip", pod_new_ip.run),
    ("scale-3-to-5", scale_3_to_5.run),
    ("zookeeper-dir", zookeeper_dir.run),
    ("caching-resolver", caching_resolver.run),
    ("ipv6-pods", ipv6_pods.run),
    # Real datastores, each pod in a network namespace of its own (harness.podnet):
    ("zookeeper-ensemble", zookeeper_ensemble.run),
    ("etcd-restart-new-ip", etcd_lifecycle.run_restart_new_ip),
    ("etcd-member-lost", etcd_lifecycle.run_member_lost),
    ("etcd-lost-volume", etcd_lifecycle.run_lost_volume),
    ("nats-cluster", nats_cluster.run),
    ("redis-sentinel", redis_sentinel.run),
    ("rabbitmq-cluster", rabbitmq_cluster.run),
    ("kafka-cluster", kafka_cluster.run),
]
