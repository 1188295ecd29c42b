from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pagero/", include("django_pagero_oauth.urls")),
    path("protected/", views.protected, name="protected"),
    path("protected-async/", views.protected_async, name="protected_async"),
    path("protected-cbv/", views.ProtectedView.as_view(), name="protected_cbv"),
    path("protected-cbv-async/", views.ProtectedAsyncView.as_view(), name="protected_cbv_async"),
    path("protected-by-middleware/", views.plain, name="middleware_protected"),
    path("api-data/", views.api_data, name="api_data"),
    path("plain/", views.plain, name="plain"),
]

# Used by test_decorators, test_mixins and test_middleware.
urlpatterns += [
    path("protected-handler/", views.protected_with_handler, name="protected_handler"),
    path(
        "protected-cbv-async-post/",
        views.ProtectedAsyncPostView.as_view(),
        name="protected_cbv_async_post",
    ),
    path(
        "protected-cbv-custom/",
        views.ProtectedCustomAnswerView.as_view(),
        name="protected_cbv_custom",
    ),
    path("token-info/", views.lazy_token_info, name="lazy_token_info"),
    path("token-info-async/", views.lazy_token_info_async, name="lazy_token_info_async"),
    path(
        "protected-by-middleware/async/",
        views.lazy_token_info_async,
        name="middleware_protected_async",
    ),
]

# Used by test_asgi_server.
urlpatterns += [
    path("user-count-async/", views.user_count_async, name="user_count_async"),
    path("api-data-async/", views.api_data_async, name="api_data_async"),
]

# Used by test_guard: the connection dies inside the view.
urlpatterns += [
    path("calls-pagero/decorator/", views.calls_pagero),
    path("calls-pagero/decorator-async/", views.calls_pagero_async),
    path("calls-pagero/mixin/", views.CallsPageroView.as_view()),
    path("calls-pagero/mixin-async/", views.CallsPageroAsyncView.as_view()),
    path("protected-by-middleware/calls-pagero/", views.calls_pagero_unguarded),
    path("protected-by-middleware/calls-pagero-async/", views.calls_pagero_unguarded_async),
]
