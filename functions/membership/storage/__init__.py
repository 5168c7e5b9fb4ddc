"""DynamoDB storage: pynamodb models own their keys; every multi-item change is one transaction."""
