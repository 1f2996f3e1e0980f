set terminal pngcairo size 1800,560 noenhanced font "DejaVu Sans,10"
set output "run-2026-11-23-requests.png"
set title "Requests to the bucket per phase (log scale; missing bar = none)"
set ylabel "requests"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical noenhanced
set datafile missing "NaN"
set datafile separator "\t"
set xtics nomirror rotate by -20
set yrange [0.5:*]
set logscale y
plot "run-2026-11-23-requests.dat" using 2:xtic(1) title columnheader(2), \
     '' using 3:xtic(1) title columnheader(3), \
     '' using 4:xtic(1) title columnheader(4), \
     '' using 5:xtic(1) title columnheader(5), \
     '' using 6:xtic(1) title columnheader(6)
