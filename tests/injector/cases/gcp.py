KIND = "GCPChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata:
  name: node-stop-example
  namespace: chaos-mesh
spec:
  action: node-stop
  secretName: cloud-key-secret
  project: your-project-id
  zone: us-central1-a
  instance: gke-cluster-default-pool-1
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata:
  name: node-reset-example
spec:
  action: node-reset
  project: example.com:legacy-project
  zone: europe-west1-b
  instance: web-1
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata:
  name: disk-loss-example
  namespace: chaos-mesh
spec:
  action: disk-loss
  secretName: cloud-key-secret
  project: your-project-id
  zone: us-central1-a
  instance: db-0
  deviceNames: [persistent-disk-1, data_disk]
  remoteCluster: prod-eu
  duration: 1m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: no-instance}
spec:
  action: node-stop
  project: your-project-id
  zone: us-central1-a
""",
        "spec.instance",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: bad-zone}
spec:
  action: node-reset
  project: your-project-id
  zone: us-central1
  instance: web-1
""",
        "spec.zone",
        "a GCP zone",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: no-devices}
spec:
  action: disk-loss
  project: your-project-id
  zone: us-central1-a
  instance: db-0
""",
        "spec.deviceNames",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: empty-devices}
spec:
  action: disk-loss
  project: your-project-id
  zone: us-central1-a
  instance: db-0
  deviceNames: []
""",
        "spec.deviceNames",
        "must not be empty",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: bad-project}
spec:
  action: node-stop
  project: My Project
  zone: us-central1-a
  instance: web-1
""",
        "spec.project",
        "a GCP project ID",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: GCPChaos
metadata: {name: inline-key}
spec:
  action: node-stop
  project: your-project-id
  zone: us-central1-a
  instance: web-1
  serviceAccountKey: "{}"
""",
        "spec.serviceAccountKey",
        "unknown field",
    ),
]
