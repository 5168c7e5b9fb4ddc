"""The local stack: DynamoDB Local, an HTTP gateway and stream pollers built from template.yaml.

Nothing here is shipped to Lambda; the handlers under `functions/` never import it.
"""
