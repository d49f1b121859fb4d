from django.urls import include, path


def login_callback(request, username):  # MFA_LOGIN_CALLBACK; unused here
    raise NotImplementedError


urlpatterns = [path("mfa/", include("mfa.urls"))]
