KIND = "AWSChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata:
  name: ec2-stop-example
  namespace: chaos-mesh
spec:
  action: ec2-stop
  secretName: cloud-key-secret
  awsRegion: us-east-1
  ec2Instance: i-0123456789abcdef0
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata:
  name: ec2-restart-example
spec:
  action: ec2-restart
  secretName: cloud-key-secret
  awsRegion: eu-central-1
  ec2Instance: i-0123abcd
  remoteCluster: staging
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata:
  name: detach-volume-example
  namespace: chaos-mesh
spec:
  action: detach-volume
  secretName: cloud-key-secret
  awsRegion: us-gov-west-1
  ec2Instance: i-0123456789abcdef0
  volumeID: vol-0123456789abcdef0
  deviceName: /dev/sdf
  endpoint: http://localstack.test:4566
  duration: 30s
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: no-instance}
spec:
  action: ec2-stop
  secretName: cloud-key-secret
  awsRegion: us-east-1
""",
        "spec.ec2Instance",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: bad-region}
spec:
  action: ec2-restart
  awsRegion: US East
  ec2Instance: i-0123456789abcdef0
""",
        "spec.awsRegion",
        "an AWS region",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: no-device}
spec:
  action: detach-volume
  awsRegion: us-east-1
  ec2Instance: i-0123456789abcdef0
  volumeID: vol-0123456789abcdef0
""",
        "spec.deviceName",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: bad-volume}
spec:
  action: detach-volume
  awsRegion: us-east-1
  ec2Instance: i-0123456789abcdef0
  volumeID: volume-1
  deviceName: /dev/sdf
""",
        "spec.volumeID",
        "an EBS volume ID",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: inline-key}
spec:
  action: ec2-stop
  awsRegion: us-east-1
  ec2Instance: i-0123456789abcdef0
  secretAccessKey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
""",
        "spec.secretAccessKey",
        "unknown field",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: bad-instance}
spec:
  action: ec2-stop
  awsRegion: us-east-1
  ec2Instance: i-XYZ
""",
        "spec.ec2Instance",
        "an EC2 instance ID",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: AWSChaos
metadata: {name: bad-endpoint}
spec:
  action: ec2-stop
  awsRegion: us-east-1
  ec2Instance: i-0123456789abcdef0
  endpoint: ftp://example.com
""",
        "spec.endpoint",
        "http(s) URL",
    ),
]
