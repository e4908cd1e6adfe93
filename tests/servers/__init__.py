"""Test servers that speak providers' wire formats, stdlib only, on 127.0.0.1."""
