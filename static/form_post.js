// OAuth 2.0 Form Post Response Mode §2: submit the response to the client at once.
document.getElementById("form-post-response").submit();
