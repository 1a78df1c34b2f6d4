# blind.py MASTER_KEY_FILE PREFIX TAG PART VALUE: the blind index term (hex) a sealed store
# keys VALUE (already folded: lower case) under in the index TAG of the kind whose keys
# start with PREFIX (PART: 0, or 1 and 2 for the two parts of a pair) - computed here
# independently of server/seal.c, from the design: subkey =
# crypto_kdf_derive_from_key(32, id 2, "oneview_", master), that is BLAKE2b-256 keyed by
# the master key with salt = id (LE) and person = the context; the term = BLAKE2b-128,
# keyed by the subkey, of the domain (0, PREFIX, TAG, PART: four bytes) and VALUE. Tests
# use it to find the table file that holds one customer's index entry without any
# plaintext to look for.
import hashlib, re, sys

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

def z85_decode(s):
    out = bytearray()
    for i in range(0, len(s), 5):
        v = 0
        for ch in s[i:i + 5]:
            v = v * 85 + Z85.index(ch)
        out += v.to_bytes(4, "big")
    return bytes(out)

text = open(sys.argv[1]).read()
master = z85_decode(re.search(r"^master\s*=\s*(\S+)", text, re.M).group(1))
sub = hashlib.blake2b(b"", digest_size=32, key=master,
                      salt=(2).to_bytes(8, "little") + bytes(8),
                      person=b"oneview_" + bytes(8)).digest()
prefix, tag, part, value = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
domain = bytes([0, ord(prefix), ord(tag), part])
print(hashlib.blake2b(domain + value.encode(), digest_size=16, key=sub).hexdigest())
