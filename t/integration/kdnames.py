"""Names and constants several test modules share: the MIT lab's host names
and addresses, the modules a proxying front end loads, well-known paths and
messages. One definition each, so a change is made once."""

# The MIT lab's hosts (the AD lab's follow its domain: see kdsite.py).
VIP = "vip.example.test"
NODE1 = "node1.example.test"
NODE2 = "node2.example.test"
BACKEND = "backend.example.test"
VIP_IP, NODE1_IP, NODE2_IP, BACKEND_IP = "127.0.0.10", "127.0.0.2", "127.0.0.3", "127.0.0.4"

# Modules of a front end that proxies, and of one that also balances.
PROXY_MODULES = ("proxy", "proxy_http", "socache_shmcb")
BALANCER_PROXY_MODULES = ("proxy", "proxy_http", "proxy_balancer", "slotmem_shm",
                          "lbmethod_byrequests", "socache_shmcb")

# The CGI that prints the request's environment, under the protected location.
ENV_CGI = "/private/cgi/env.cgi"

# What MIT's and Samba's KDCs say when they refuse an option (KDC_ERR_BADOPTION).
BADOPTION = "KDC can't fulfill requested option"

# The web's own user files (Basic, Form), not the KDC's passwords.
WEB_PASSWORD = "web-Secret-1"

# A session key file's key (base64 of 32 bytes), and a second one for rotation.
STORE_IP = "127.0.0.11"  # memcached / redis shared by the farm
KEY_A = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M="
KEY_B = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# Warnings the load-balanced site tests provoke on purpose: a failed Kerberos
# attempt on the VIP name, the loop guard, a bad way back, an ignored cookie.
EXPECTED = {"KD00301", "KD00702", "KD00708", "KD00703"}
