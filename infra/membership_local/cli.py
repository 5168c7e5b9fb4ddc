"""`membership-local`: run the stack on loopback and work with it.

    membership-local up          DynamoDB Local, the table, the gateway, the stream poller
    membership-local token ...   a dev JWT the running gateway accepts

Subcommands register themselves with `@command(...)`, so later ones (settle, reconcile,
seed, dlq) slot in beside these.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .paths import state_dir

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `run(args) -> exit code` as the subcommand `name`."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return register


# Subcommands that live in their own modules; importing one registers it.
COMMAND_MODULES = ("reconcile", "settle", "seed", "eventbus", "sweep", "queues", "fakepay",
                   "backfill", "metrics", "daily")


def _load_command_modules() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="membership-local", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        cmd.add_arguments(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


# --- the running stack's state ---------------------------------------------------------------


def stack_file() -> Path:
    return state_dir() / STACK_FILE


def read_stack() -> dict | None:
    """What `up` wrote, when a stack is running; None otherwise."""
    try:
        stack = json.loads(stack_file().read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(stack["pid"], 0)
    except (KeyError, OSError):
        return None  # left behind by a stack that did not shut down cleanly
    return stack


# --- up --------------------------------------------------------------------------------------


def _up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for the API")
    parser.add_argument("--dynamodb-port", type=int, default=8000)
    parser.add_argument("--api-port", type=int, default=3000)
    parser.add_argument("--events-port", type=int, default=3001,
                        help="where handlers send EventBridge calls (the local event bus)")
    parser.add_argument("--queues-port", type=int, default=3002,
                        help="where handlers send SQS calls (the local queues)")
    parser.add_argument("--table", default="membership")
    parser.add_argument("--event-bus", default="membership")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--program-time-zone", metavar="ZONE",
                        help="the ProgramTimeZone parameter, e.g. Pacific/Auckland "
                             "(default: the template's)")
    parser.add_argument("--quiet", action="store_true", help="no access log lines")
    parser.add_argument("--payment-verifier", choices=["test", "providers"], default="test",
                        help="what verifies the app's top-ups: 'test-' references (test), or "
                             "the fake WeChat Pay and Alipay through the real verifiers "
                             "(providers). Their notifications work either way.")
    parser.add_argument("--providers-port", type=int, default=0,
                        help="the fake payment providers' port (default: any free one)")
    parser.add_argument("--secrets-port", type=int, default=0,
                        help="the local Secrets Manager's port (default: any free one)")


PAYMENT_VERIFIERS = {
    "test": "membership.services.payments.TestReferenceVerifier",
    "providers": "membership.services.payment_providers.ProviderVerifier",
}


def _start_payment_providers(args: argparse.Namespace, api_url: str, running: list):
    """Fake WeChat Pay and Alipay, and a local Secrets Manager holding their merchant
    secrets; returns (stack entries, environment for the handlers)."""
    from .dynamodb import free_port
    from .fakepay import ALIPAY_SECRET, WECHATPAY_SECRET, FakeProviders, LocalSecrets

    fake = FakeProviders(api_url=api_url, port=args.providers_port).start()
    running.append(fake.stop)
    secrets = LocalSecrets(args.secrets_port or free_port()).start(
        {WECHATPAY_SECRET: fake.wechatpay.secret(), ALIPAY_SECRET: fake.alipay.secret()},
        args.region)
    running.append(secrets.stop)
    env = {**fake.environment(), "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets.endpoint}
    refs = {"WechatPaySecretName": WECHATPAY_SECRET, "AlipaySecretName": ALIPAY_SECRET,
            "PaymentVerifier": PAYMENT_VERIFIERS[args.payment_verifier]}
    entries = {"fake_providers_url": fake.url, "secrets_endpoint": secrets.endpoint,
               "payment_verifier": args.payment_verifier}
    return fake, entries, env, refs


@command("up", "start DynamoDB Local, the table, the HTTP gateway and the stream poller",
         _up_arguments)
def up(args: argparse.Namespace) -> int:
    from .dynamodb import DynamoDBStartError, start_dynamodb
    from .gateway import Gateway, is_loopback
    from .queues import LocalQueues, queue_refs
    from .runtime import Handlers, apply_environment, lambda_environment
    from .streams import StreamPoller
    from .template import create_table, load_template

    if not is_loopback(args.host):
        # Dev tokens are signed by a key anyone with the checkout has: never expose the API.
        print(f"membership-local: --host must be a loopback address, not {args.host}",
              file=sys.stderr)
        return 1
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    running: list[Callable[[], None]] = []  # stop functions, in start order
    try:
        template = load_template()
        try:
            db = start_dynamodb(args.dynamodb_port)
        except DynamoDBStartError as exc:
            print(f"membership-local: cannot start DynamoDB: {exc}", file=sys.stderr)
            return 1
        running.append(db.stop)
        create_table(db.endpoint, args.table, args.region, template=template)
        events_url = f"http://127.0.0.1:{args.events_port}"
        queues_url = f"http://127.0.0.1:{args.queues_port}"
        refs = queue_refs(template, queues_url, args.region)
        if args.program_time_zone:
            refs["ProgramTimeZone"] = args.program_time_zone
        fake_providers, payments, payment_env, payment_refs = _start_payment_providers(
            args, f"http://{args.host}:{args.api_port}", running)
        env = lambda_environment(
            template, table_name=args.table, dynamodb_endpoint=db.endpoint,
            events_endpoint=events_url, event_bus_name=args.event_bus, region=args.region,
            refs={**refs, **payment_refs},
        )
        env["AWS_ENDPOINT_URL_SQS"] = queues_url
        apply_environment({**env, **payment_env})
        _seed_program()
        handlers = Handlers()
        from .eventbus import EventBus

        try:
            bus = EventBus(template, port=args.events_port, handlers=handlers,
                           region=args.region, refs={"MembershipEventBus": args.event_bus}
                           ).start()
        except OSError as exc:
            print(f"membership-local: cannot start the event bus: {exc}", file=sys.stderr)
            return 1
        running.append(bus.stop)
        try:
            queues = LocalQueues(template, port=args.queues_port, handlers=handlers,
                                 region=args.region).start()
        except OSError as exc:
            print(f"membership-local: cannot start the local queues: {exc}", file=sys.stderr)
            return 1
        running.append(queues.stop)
        poller = StreamPoller(template, endpoint=db.endpoint, table_name=args.table,
                              region=args.region, handlers=handlers).start()
        running.append(poller.stop)
        try:
            gateway = Gateway(template, host=args.host, port=args.api_port, handlers=handlers,
                              access_log=not args.quiet).start()
        except (OSError, ValueError) as exc:
            print(f"membership-local: cannot start the gateway: {exc}", file=sys.stderr)
            return 1
        running.append(gateway.stop)
        fake_providers.api_url = gateway.url  # where the fakes send their notifications
        stack = {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
            "api_port": gateway.port,
            "dynamodb_port": db.port,
            "events_port": args.events_port,
            "api_url": gateway.url,
            "issuer": gateway.issuer,
            "audience": gateway.audience,
            "dynamodb_endpoint": db.endpoint,
            "dynamodb_backend": db.backend,
            "table": args.table,
            "region": args.region,
            "events_url": events_url,
            "event_bus": args.event_bus,
            "queues_url": queues_url,
            "streams": poller.running,
            "program_time_zone": os.environ.get("PROGRAM_TIME_ZONE"),
            **payments,
        }
        stack_file().write_text(json.dumps(stack, indent=2))
        running.append(_forget_stack)
        _banner(stack)
        while not stopping.wait(1.0):
            pass
        print("\nstopping…", file=sys.stderr)
        return 0
    finally:
        for stop in reversed(running):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"membership-local: while stopping: {exc}", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _seed_program() -> None:
    try:
        from membership.storage.program import seed_default_program
    except ImportError as exc:
        print(f"membership-local: not seeding the program ({exc})", file=sys.stderr)
        return
    written = seed_default_program()
    print("program: default program seeded" if written else "program: already present")
    from datetime import UTC, datetime

    from membership.storage.coupons import seed_default_templates

    templates = seed_default_templates(datetime.now(UTC))
    print(f"coupon templates: {', '.join(templates)} seeded" if templates
          else "coupon templates: already present")


def _forget_stack() -> None:
    stack = read_stack()
    if stack and stack.get("pid") == os.getpid():
        stack_file().unlink(missing_ok=True)


def _banner(stack: dict) -> None:
    api = stack["api_url"]
    fallback = "  (moto fallback: no Java)" if stack["dynamodb_backend"] == "moto" else ""
    streams = "polling" if stack["streams"] else "NOT running (see the warning above)"
    print(
        f"""
Membership local stack is up.
  DynamoDB      {stack['dynamodb_endpoint']}  table {stack['table']}{fallback}
  API           {api}
  OpenAPI       {api}/openapi.json
  Swagger UI    {api}/docs
  Streams       {streams}
  Event bus     {stack['events_url']} (PutEvents, routed by template.yaml's rules;
                `membership-local dlq` lists what failed after retries)
  Queues        {stack['queues_url']} (SQS for the template's queues, drained by their
                functions; `membership-local queues` lists dead-lettered messages)
  Payments      fake WeChat Pay and Alipay at {stack['fake_providers_url']}; top-ups and
                plan terms verified by: {stack['payment_verifier']} (docs/payments.md)

Try it:
  TOKEN=$(membership-local token --sub demo-user --scope member)
  curl -s -X POST {api}/v1/members -H "Authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' \\
    -d '{{"phone":"13812345678","nickname":"Demo","channel":"app","storeId":"store-001"}}'
  curl -s {api}/v1/members/me -H "Authorization: Bearer $TOKEN"
  curl -s -X POST {api}/v1/members/me/checkins -H "Authorization: Bearer $TOKEN"
  curl -s {api}/v1/members/me/coupons -H "Authorization: Bearer $TOKEN"
  membership-local pay wechatpay --sub demo-user --amount 50000   # paid, notified, credited

Operators (docs/operations.md):
  ADMIN=$(membership-local token --sub ops-demo --scope admin)
  curl -si {api}/v1/admin/program -H "Authorization: Bearer $ADMIN"
  curl -s {api}/v1/admin/coupon-templates/WELCOME-10OFF100 -H "Authorization: Bearer $ADMIN"

Ctrl-C stops everything.
""",
        flush=True,
    )


# --- token -----------------------------------------------------------------------------------


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sub", required=True, help="the member (or caller) id")
    parser.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE",
                        help="member, orders or admin; repeat for several (default: member)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    parser.add_argument("--issuer", help="default: the running stack's, else port 3000's")
    parser.add_argument("--audience", help="default: the running stack's")


@command("token", "print a dev JWT the local gateway accepts", _token_arguments)
def token(args: argparse.Namespace) -> int:
    from .apigw import DEFAULT_AUDIENCE, DEFAULT_ISSUER
    from .jwt import mint_token

    stack = read_stack() or {}
    print(mint_token(
        args.sub,
        args.scopes or ["member"],
        ttl=args.ttl,
        issuer=args.issuer or stack.get("issuer", DEFAULT_ISSUER),
        audience=args.audience or stack.get("audience", DEFAULT_AUDIENCE),
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
