"""The local gateway over HTTP: the authorizer, routing and the API docs."""
import pytest
import requests

pytestmark = pytest.mark.e2e


def test_no_token_is_401(stack):
    response = requests.get(f"{stack.api_url}/v1/members/me", timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_invalid_token_is_401(stack):
    response = requests.get(f"{stack.api_url}/v1/members/me", timeout=10,
                            headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_token_without_the_route_scope_is_403(stack):
    response = requests.get(f"{stack.api_url}/v1/members/me", timeout=10,
                            headers=stack.auth("order-system", "orders"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_unknown_route_is_404(stack):
    response = requests.get(f"{stack.api_url}/v1/nothing-here", timeout=10,
                            headers=stack.auth("demo-user"))
    assert response.status_code == 404
    assert response.json()["code"] == "route_not_found"
    # A known path with a method it does not route is 404 too, as in API Gateway.
    response = requests.delete(f"{stack.api_url}/v1/program", timeout=10)
    assert response.status_code == 404


def test_openapi_document_is_public(stack):
    response = requests.get(f"{stack.api_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert "openapi" in document
    assert document["servers"][0]["url"] == stack.api_url


def test_swagger_ui_is_served_offline(stack):
    page = requests.get(f"{stack.api_url}/docs", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    bundle = requests.get(f"{stack.api_url}/docs/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text
