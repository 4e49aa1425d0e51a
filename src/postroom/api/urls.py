from ninja import NinjaAPI

api = NinjaAPI(title="Postroom API", version="1", urls_namespace="api")
