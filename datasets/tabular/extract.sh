#!/bin/sh
# Rebuilds the CSV files of this folder from Debian's python3-sklearn package (BSD-3-Clause) without
# installing it or the Python stack: apt-get download + dpkg-deb -x, then zcat/awk. Deterministic:
# rows keep the package's order; row i (0-based) goes to *_train.csv if i is even, else to *_val.csv.
# Usage: datasets/tabular/extract.sh [OUTPUT_DIR]   (default: the folder of this script)
set -eu
out=$(cd "${1:-$(dirname "$0")}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download python3-sklearn >/dev/null
dpkg-deb -x python3-sklearn_*.deb x
data=$(find x -type d -path '*sklearn/datasets/data' | head -n 1)

# split NAME: reads a headed CSV on stdin, writes NAME_train.csv and NAME_val.csv.
split() {
  awk -v tr="$out/$1_train.csv" -v va="$out/$1_val.csv" \
    'NR == 1 { print > tr; print > va; next } { if ((NR - 2) % 2 == 0) print > tr; else print > va }'
}

# Diabetes (Efron et al. 2004): 442 patients, 10 raw (unscaled) baseline variables, target = disease
# progression one year after baseline. data_raw is space separated; the target file is one float a line.
zcat "$data/diabetes_target.csv.gz" | awk '{ printf "%d\n", $1 + 0.5 }' > target.txt
zcat "$data/diabetes_data_raw.csv.gz" | awk '{ $1 = $1; gsub(/ /, ","); print }' > features.txt
{ echo "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression"; paste -d, features.txt target.txt; } | split diabetes

# Breast cancer Wisconsin (diagnostic): 569 tumours, 30 features, last column 0 = malignant, 1 = benign
# (the package's encoding). The first line of the package's file is a count line, replaced by our header.
header=""
for group in mean error worst; do
  for f in radius texture perimeter area smoothness compactness concavity concave_points symmetry fractal_dimension; do
    if [ "$group" = mean ]; then name="mean_$f"; else name="${f}_$group"; fi
    header="$header$name,"
  done
done
{ echo "${header}benign"; tail -n +2 "$data/breast_cancer.csv"; } | split breast_cancer

# Optical recognition of handwritten digits: 1797 8x8 images, pixel counts 0..16, last column the digit.
header=""
r=0
while [ $r -lt 8 ]; do c=0; while [ $c -lt 8 ]; do header="${header}pixel_${r}_${c},"; c=$((c + 1)); done; r=$((r + 1)); done
{ echo "${header}digit"; zcat "$data/digits.csv.gz" | awk -F, '{ for (i = 1; i <= NF; ++i) $i = $i + 0; OFS = ","; $1 = $1; print }'; } | split digits

# The descriptions (provenance, citations) as shipped.
descr=$(find x -type d -path '*sklearn/datasets/descr' | head -n 1)
cp "$descr/diabetes.rst" "$descr/breast_cancer.rst" "$descr/digits.rst" "$out/" 2>/dev/null || true
echo "wrote $(ls "$out"/*.csv | wc -l) CSV files to $out" >&2
