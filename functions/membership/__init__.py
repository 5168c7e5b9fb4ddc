"""Membership: the code every Lambda function of the stack ships."""
