#!/usr/bin/env python3
"""Lines of C++ and the longest functions, per folder of the repository.

Usage: scripts/code_stats.py [--top N] [--over L] [ROOT]

A folder is a top-level directory, or one level deeper under nodes/, apps/, tests/ and ddn/ (each family, app or
test suite on its own row). Lines are physical lines of the tracked .h/.cc files (git ls-files). A function is a
brace block whose header ends in ')' plus qualifiers (or a constructor's initialiser list) at namespace or class
scope; its length runs from the header's first line to the closing brace. Comments, strings and preprocessor lines
are ignored while matching braces. It is a heuristic (macros that open blocks may confuse it), good for trends.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

SCOPE_WORDS = re.compile(r'\b(namespace|class|struct|union|enum|extern)\b')
FUNCTION_TAIL = re.compile(
    r'\)\s*(const|noexcept(\s*\([^)]*\))?|override|final|mutable|&|&&|\s)*(->\s*[\w:<>,\s&*]+)?\s*$')
INIT_LIST = re.compile(r'\)\s*(noexcept\s*)?:\s*[\w:]')


def strip(text):
    """Blanks out comments, string/char literals and preprocessor lines, keeping newlines."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == '#':
            while i < n and text[i] != '\n':
                if text[i] == '\\' and i + 1 < n and text[i + 1] == '\n':
                    out.append('\n')
                    i += 2
                    continue
                i += 1
            continue
        if c == '\n':
            line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith('//', i):
            while i < n and text[i] != '\n':
                i += 1
            continue
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append('\n' * text.count('\n', i, j))
            i = j
            continue
        m = re.match(r'R"([^(]*)\(', text[i:i + 40])
        if m:
            end = text.find(')' + m.group(1) + '"', i)
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + '\n' * text.count('\n', i, end))
            i = end
            continue
        if c in '"\'':
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def functions(path):
    """Yields (name, first_line, length) for the functions defined in one file."""
    with open(path, encoding='utf-8', errors='replace') as f:
        text = strip(f.read())
    stack = []  # kinds of the open braces: 'scope', 'function', 'other'
    header, header_line = '', None
    line = 1
    for c in text:
        if c == '\n':
            line += 1
        if c == '{':
            in_function = any(k[0] == 'function' for k in stack)
            h = header.strip()
            if in_function:
                kind = 'block'
            elif SCOPE_WORDS.search(h.split('(')[0]) and not FUNCTION_TAIL.search(h):
                kind = 'scope'
            elif FUNCTION_TAIL.search(h) or (INIT_LIST.search(h) and re.search(r'[)}]\s*$', h)):
                kind = 'function'
            elif h == '' or h.endswith('=') or re.search(r'[\w>\]]$', h):
                kind = 'other'
            else:
                kind = 'other'
            if kind == 'function':
                name_part = h.split('(')[0].split()
                name = name_part[-1] if name_part else '?'
                if re.match(r'^(TEST|TEST_F|TEST_P|BENCHMARK|TYPED_TEST)$', name):
                    name = h[:h.find(')') + 1].replace('\n', ' ')
                stack.append(('function', name, header_line or line))
            else:
                stack.append((kind, None, None))
            if kind in ('scope', 'function', 'block'):
                header, header_line = '', None
            else:
                header += c
        elif c == '}':
            if stack:
                kind, name, start = stack.pop()
                if kind == 'function':
                    yield name, start, line - start + 1
                if kind == 'other' and not any(k[0] == 'function' for k in stack):
                    header += c
                    continue
            header, header_line = '', None
        elif c == ';' and not any(k[0] in ('function', 'other') for k in stack[-1:]):
            header, header_line = '', None
        elif c == ';':
            if stack and stack[-1][0] != 'other':
                header, header_line = '', None
        else:
            if not c.isspace() and header_line is None:
                header_line = line
            if header_line is not None:
                header += c


def folder_of(path):
    parts = path.split('/')
    if len(parts) == 1:
        return '.'
    if parts[0] in ('nodes', 'apps', 'tests', 'ddn') and len(parts) > 2:
        return parts[0] + '/' + parts[1]
    return parts[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', nargs='?', default='.')
    parser.add_argument('--top', type=int, default=3, help='longest functions listed per folder')
    parser.add_argument('--over', type=int, default=80, help='count functions longer than this')
    args = parser.parse_args()
    files = subprocess.run(['git', '-C', args.root, 'ls-files', '*.h', '*.cc', '*.h.in'], check=True,
                           capture_output=True, text=True).stdout.split()
    lines = collections.Counter()
    nfiles = collections.Counter()
    funcs = collections.defaultdict(list)
    for rel in files:
        path = os.path.join(args.root, rel)
        with open(path, encoding='utf-8', errors='replace') as f:
            n = sum(1 for _ in f)
        folder = folder_of(rel)
        lines[folder] += n
        nfiles[folder] += 1
        for name, start, length in functions(path):
            funcs[folder].append((length, f'{rel}:{start} {name}'))
    print(f'{"folder":<22} {"files":>5} {"lines":>7} {"funcs":>5} {">" + str(args.over):>5}  longest')
    total_lines = total_funcs = total_over = 0
    for folder in sorted(lines):
        fs = sorted(funcs[folder], reverse=True)
        over = sum(1 for length, _ in fs if length > args.over)
        total_lines += lines[folder]
        total_funcs += len(fs)
        total_over += over
        longest = '; '.join(f'{length} {where}' for length, where in fs[:args.top])
        print(f'{folder:<22} {nfiles[folder]:>5} {lines[folder]:>7} {len(fs):>5} {over:>5}  {longest}')
    print(f'{"total":<22} {sum(nfiles.values()):>5} {total_lines:>7} {total_funcs:>5} {total_over:>5}')


if __name__ == '__main__':
    sys.exit(main())
