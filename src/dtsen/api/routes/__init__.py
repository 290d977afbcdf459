"""The registry API's routes, one router per resource."""
