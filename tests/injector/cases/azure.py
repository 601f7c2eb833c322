KIND = "AzureChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata:
  name: vm-stop-example
  namespace: chaos-mesh
spec:
  action: vm-stop
  secretName: cloud-key-secret
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-web
  vmName: web-vm-1
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata:
  name: vm-restart-example
spec:
  action: vm-restart
  subscriptionID: 0D8C0B2E-3D7B-4C4E-9E5F-1A2B3C4D5E6F
  resourceGroupName: my.resource(group)_1
  vmName: web_vm
  remoteCluster: staging
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata:
  name: disk-detach-example
  namespace: chaos-mesh
spec:
  action: disk-detach
  secretName: cloud-key-secret
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-data
  vmName: db-vm
  diskName: db-vm-data-0
  lun: 0
  duration: 2m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: no-vm}
spec:
  action: vm-stop
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-web
""",
        "spec.vmName",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: bad-subscription}
spec:
  action: vm-restart
  subscriptionID: my-subscription
  resourceGroupName: rg-web
  vmName: web-vm-1
""",
        "spec.subscriptionID",
        "a subscription ID",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: no-lun}
spec:
  action: disk-detach
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-data
  vmName: db-vm
  diskName: db-vm-data-0
""",
        "spec.lun",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: lun-too-big}
spec:
  action: disk-detach
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-data
  vmName: db-vm
  diskName: db-vm-data-0
  lun: 64
""",
        "spec.lun",
        "above the maximum of 63",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: no-disk}
spec:
  action: disk-detach
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-data
  vmName: db-vm
  lun: 1
""",
        "spec.diskName",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AzureChaos
metadata: {name: inline-secret}
spec:
  action: vm-stop
  subscriptionID: 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f
  resourceGroupName: rg-web
  vmName: web-vm-1
  clientSecret: abc
""",
        "spec.clientSecret",
        "unknown field",
    ),
]
