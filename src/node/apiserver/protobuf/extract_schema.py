#!/usr/bin/env python3
"""Regenerate schema.txt: python3 extract_schema.py target/tools/kubectl > schema.txt

kubectl embeds the gzipped FileDescriptorProtos of every generated.proto it was built with;
this reads them (with a minimal protobuf reader) and prints the trimmed table kindling uses."""
import re
import sys
import zlib

GZIP_HEADER = b'\x1f\x8b\x08\x00\x00\x00\x00\x00'
# gogoproto field options (extension numbers) that matter here.
NULLABLE, CUSTOMNAME = 65001, 65004


def varint(b, i):
    value, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def fields(b):
    """A message's (number, value) pairs: ints for varints, bytes for everything else."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(b, i)
        elif wire == 2:
            n, i = varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = b[i:i + n], i + n
        else:
            raise ValueError(f'wire type {wire}')
        out.append((number, value))
    return out


def load(path):
    """FileDescriptorProtos of the generated.proto files in a Go binary, by file name."""
    data = open(path, 'rb').read()
    files = {}
    for m in re.finditer(re.escape(GZIP_HEADER), data):
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start() + 2_000_000])
        except zlib.error:
            continue
        if b'generated.proto' in d[:200]:
            fd = fields(d)
            files[next(v for f, v in fd if f == 1).decode()] = fd
    return files


def msgs(files):
    """Fully qualified message name -> its fields (DescriptorProto field 2) as dicts."""
    out = {}
    for fd in files.values():
        package = next(v for f, v in fd if f == 2).decode()

        def walk(m, prefix):
            fl = fields(m)
            full = prefix + '.' + next(v for f, v in fl if f == 1).decode()
            for f, v in fl:
                if f == 3:  # nested types: map entries
                    walk(v, full)
            out[full] = []
            for f, v in fl:
                if f == 2:
                    d = dict(fields(v))
                    opts = dict(fields(d[8])) if 8 in d else {}
                    out[full].append(dict(
                        name=d[1].decode(), num=d[3], label=d[4], type=d[5],
                        tname=d.get(6, b'').decode(),
                        opts={'nullable': opts.get(NULLABLE), 'customname': opts.get(CUSTOMNAME)}))

        for f, v in fd:
            if f == 4:
                walk(v, '.' + package)
    return out


PACKAGES = {  # proto package -> apiVersion
    'core.v1': 'v1', 'apps.v1': 'apps/v1', 'batch.v1': 'batch/v1',
    'coordination.v1': 'coordination.k8s.io/v1', 'discovery.v1': 'discovery.k8s.io/v1',
    'events.v1': 'events.k8s.io/v1', 'networking.v1': 'networking.k8s.io/v1',
    'rbac.v1': 'rbac.authorization.k8s.io/v1', 'policy.v1': 'policy/v1',
    'autoscaling.v1': 'autoscaling/v1', 'autoscaling.v2': 'autoscaling/v2',
    'scheduling.v1': 'scheduling.k8s.io/v1', 'authentication.v1': 'authentication.k8s.io/v1',
    'authorization.v1': 'authorization.k8s.io/v1', 'storage.v1': 'storage.k8s.io/v1',
    'meta.v1': 'meta.k8s.io/v1',
}
# Go types whose JSON form is not an object: decoded by code, not by the table.
SPECIAL = {'meta.v1.Time': 'time', 'meta.v1.MicroTime': 'microtime', 'meta.v1.Duration': 'duration',
           'intstr.IntOrString': 'intorstring', 'resource.Quantity': 'quantity',
           'runtime.RawExtension': 'rawjson', 'meta.v1.FieldsV1': 'rawjson'}
# Embedded Go structs serialised under their own JSON key, not inlined.
# Go embedded structs that JSON inlines (`json:",inline"`); the descriptor cannot tell these from
# ordinary fields named after their type (like RoleBinding.roleRef), so they are listed by hand.
INLINE = {'core.v1.LocalObjectReference', 'core.v1.VolumeSource', 'core.v1.PersistentVolumeSource',
          'core.v1.ProbeHandler', 'core.v1.EphemeralContainerCommon', 'networking.v1.IngressRuleValue'}
# Go slice types carried in a wrapper message whose only field is the list.
LISTS = {'authentication.v1.ExtraValue', 'authorization.v1.ExtraValue'}
SCALARS = {1: 'double', 2: 'float', 3: 'int64', 4: 'uint64', 5: 'int32', 8: 'bool', 9: 'string',
           12: 'bytes', 13: 'uint32', 17: 'int32', 18: 'int64'}

def short(full):
    for p in ('.k8s.io.api.', '.k8s.io.apimachinery.pkg.apis.', '.k8s.io.apimachinery.pkg.util.',
              '.k8s.io.apimachinery.pkg.api.', '.k8s.io.apimachinery.pkg.'):
        if full.startswith(p):
            return full[len(p):]
    raise ValueError(full)

def is_entry(S, t):
    return t.endswith('Entry') and [x['name'] for x in S[t]] == ['key', 'value']

def main():
    M = msgs(load(sys.argv[1]))
    S = {}
    for k, v in M.items():
        try:
            S[short(k)] = v
        except ValueError:
            pass
    roots = [n for n, fs in S.items() if n.rsplit('.', 1)[0] in PACKAGES and n.count('.') == 2
             and any(f['name'] == 'metadata' and f['tname'].endswith('meta.v1.ObjectMeta') for f in fs)]
    roots += ['meta.v1.DeleteOptions']
    seen, order = set(), []
    def visit(n):
        if n in seen or n in SPECIAL:
            return
        seen.add(n)
        if not is_entry(S, n):
            order.append(n)
        for f in S[n]:
            if f['type'] == 11:
                visit(short(f['tname']))
    for r in sorted(roots):
        visit(r)
    print('# Kubernetes protobuf messages kindling decodes, one block per message:')
    print('#   package PACKAGE API-VERSION')
    print('#   message NAME [kind|list]  (kind: a top-level object; list: JSON is the list in field 1)')
    print('#   NUMBER JSON-NAME TYPE [repeated] [pointer] [inline]')
    print('# TYPE is a scalar, a message name, or map:KEY:VALUE. `pointer` marks a Go pointer field whose')
    print('# zero value is kept; `inline` marks a Go embedded struct whose fields JSON inlines.')
    print('# Time, MicroTime, Duration, IntOrString, Quantity, RawExtension and FieldsV1 are decoded by code.')
    print('# Extracted by extract_schema.py from the descriptors of k8s.io/api and k8s.io/apimachinery')
    print('# v0.33 (generated.proto) that kubectl embeds.')
    for p, av in PACKAGES.items():
        print(f'package {p} {av}')
    for n in order:
        kind = ' kind' if n in roots else ' list' if n in LISTS else ''
        print(f'message {n}{kind}')
        for f in sorted(S[n], key=lambda f: f['num']):
            fl = []
            if f['type'] == 11:
                t = short(f['tname'])
                sub = S.get(t)
                if is_entry(S, t):
                    k, v = sub
                    vt = SCALARS[v['type']] if v['type'] != 11 else short(v['tname'])
                    ty = f'map:{SCALARS[k["type"]]}:{vt}'
                else:
                    ty = t
                    if t in INLINE and f['label'] != 3 and f['opts'].get('nullable') == 0:
                        fl.append('inline')
            else:
                ty = SCALARS[f['type']]
                if f['opts'].get('nullable') != 0 and f['label'] != 3:
                    fl.insert(0, 'pointer')
            if f['label'] == 3 and not ty.startswith('map:'):
                fl.insert(0, 'repeated')
            print(' '.join([str(f['num']), f['name'], ty] + fl))

if __name__ == '__main__':
    main()
