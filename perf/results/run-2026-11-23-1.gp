set terminal pngcairo size 1800,560 noenhanced font "DejaVu Sans,10"
set output "run-2026-11-23-1.png"
set title "1. Epoch read of the shards (cold, then warm)"
set ylabel "MB/s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical noenhanced
set datafile missing "NaN"
set datafile separator "\t"
set xtics nomirror rotate by -20
set yrange [0:*]
plot "run-2026-11-23-1.dat" using 2:xtic(1) title columnheader(2), \
     '' using 3:xtic(1) title columnheader(3), \
     '' using 4:xtic(1) title columnheader(4), \
     '' using 5:xtic(1) title columnheader(5), \
     '' using 6:xtic(1) title columnheader(6), \
     '' using 7:xtic(1) title columnheader(7), \
     '' using 8:xtic(1) title columnheader(8)
