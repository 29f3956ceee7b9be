def test_openapi_schema_documents_the_event_api(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/events", "/api/v1/events/batch"} <= paths.keys()
    assert "/api/v1/customers/{external_customer_id}/current_usage" in paths


def test_api_docs_page_is_served_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in response.content
